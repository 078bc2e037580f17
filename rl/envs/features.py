"""Market features, precomputed once with numpy (nothing pandas-like runs inside `step`).

Per bar t, using data up to and including close[t] only:
- `ret_k` (k = 0..window-1): log return of bar t-k divided by the rolling volatility at t,
- `realised_vol`: std of log returns over the last `window` bars,
- `hl_range`: (high - low) / close,
- `ema_fast_dist`, `ema_slow_dist`: close / EMA - 1,
- `trend_k` (k in `trend_windows`): log(close[t] / close[t-k]) / (vol * sqrt(k)), a multi-day trend z-score,
- `vol_regime`: log of the `window`-bar volatility over the `vol_long`-bar volatility (when `vol_long` is set),
- `volume_z`: z-score of log(1 + volume) over `vol_window` bars (only when the data has volume),
- `hour_sin/cos`, `dow_sin/cos` (with `time_features`): the bar's UTC hour of day and day of week on circles.
Features are computed per continuous segment (a gap restarts the warm-up) and standardised with a scaler
fitted on the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field, field_validator

from trader_core.market_data import Candles, segments

CLIP = 5.0


class FeatureSpec(BaseModel):
    """How market features are built; saved with every run so inference rebuilds them identically."""

    window: int = Field(8, ge=2, le=512, description="bars of scaled log returns in the observation")
    trend_windows: list[int] = Field(default_factory=list, description="look-backs in bars of multi-day trend "
                                     "features, e.g. [24, 72, 168]; empty: none")
    vol_long: int | None = Field(None, ge=8, le=4096, description="bars of the long volatility in vol_regime; "
                                 "None: no vol_regime feature")
    vol_window: int = Field(48, ge=4, le=2048, description="bars for rolling volatility / volume stats")
    ema_fast: int = Field(12, ge=2, description="fast EMA span in bars")
    ema_slow: int = Field(48, ge=3, description="slow EMA span in bars")
    max_gap_bars: float = Field(3.0, gt=1.0, description="a gap longer than this many bars splits the series")
    use_volume: bool = Field(True, description="add volume_z when the data has volume")
    time_features: bool = Field(False, description="add hour-of-day and day-of-week (UTC, sin/cos): intraday "
                                "and weekend seasonality, read from the bar's own timestamp")

    @field_validator("trend_windows")
    @classmethod
    def _positive_windows(cls, v: list[int]) -> list[int]:
        if any(k < 2 or k > 4096 for k in v):
            raise ValueError("trend windows must be between 2 and 4096 bars")
        return sorted(set(v))

    @property
    def lookback(self) -> int:
        """Bars of history a feature row needs: the warm-up and the minimum gap between splits."""
        trend = max(self.trend_windows, default=0) + self.vol_window
        return max(self.window + self.vol_window, 2 * self.ema_slow, trend, (self.vol_long or 0) + 1)


class Scaler(BaseModel):
    mean: list[float]
    std: list[float]

    def apply(self, raw: np.ndarray) -> np.ndarray:
        z = (raw - np.asarray(self.mean)) / np.asarray(self.std)
        return np.clip(z, -CLIP, CLIP)


@dataclass
class MarketFeatures:
    """Scaled feature matrix aligned with the candles, plus what the env needs to index it."""

    candles: Candles
    spec: FeatureSpec
    names: list[str]
    raw: np.ndarray  # float64 [n, F], NaN during warm-up
    scaled: np.ndarray  # float32 [n, F], 0 during warm-up (never observed: episodes start after it)
    valid: np.ndarray  # bool [n]
    segment_end: np.ndarray  # int64 [n]: the stop index of the bar's continuous segment
    scaler: Scaler

    @property
    def n_features(self) -> int:
        return self.scaled.shape[1]


def _rolling_std(x: np.ndarray, w: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) >= w:
        out[w - 1:] = np.lib.stride_tricks.sliding_window_view(x, w).std(axis=1)
    return out


def _rolling_mean(x: np.ndarray, w: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) >= w:
        out[w - 1:] = np.lib.stride_tricks.sliding_window_view(x, w).mean(axis=1)
    return out


def _ema(x: np.ndarray, span: int) -> np.ndarray:
    alpha = 2.0 / (span + 1.0)
    out = np.empty_like(x)
    acc = x[0]
    for i, v in enumerate(x.tolist()):  # causal recursion; a Python loop over floats is fast enough here
        acc = acc + alpha * (v - acc)
        out[i] = acc
    return out


def feature_names(spec: FeatureSpec, has_volume: bool) -> list[str]:
    names = [f"ret_{k}" for k in range(spec.window)]
    names += ["realised_vol", "hl_range", "ema_fast_dist", "ema_slow_dist"]
    names += [f"trend_{k}" for k in spec.trend_windows]
    if spec.vol_long:
        names.append("vol_regime")
    if has_volume and spec.use_volume:
        names.append("volume_z")
    if spec.time_features:
        names += ["hour_sin", "hour_cos", "dow_sin", "dow_cos"]
    return names


def _segment_features(c: Candles, a: int, b: int, spec: FeatureSpec, with_volume: bool) -> np.ndarray:
    close = c.close[a:b]
    lr = np.empty(b - a)
    lr[0] = np.nan
    lr[1:] = np.diff(np.log(close))
    vol = np.full(b - a, np.nan)
    vol[1:] = _rolling_std(lr[1:], spec.vol_window)
    safe_vol = np.where(vol > 1e-12, vol, np.nan)
    cols = []
    for k in range(spec.window):
        shifted = np.full(b - a, np.nan)
        shifted[k:] = lr[: b - a - k]
        cols.append(shifted / safe_vol)
    realised = np.full(b - a, np.nan)
    realised[1:] = _rolling_std(lr[1:], spec.window)
    cols.append(realised)
    cols.append((c.high[a:b] - c.low[a:b]) / close)
    cols.append(close / _ema(close, spec.ema_fast) - 1.0)
    cols.append(close / _ema(close, spec.ema_slow) - 1.0)
    log_close = np.log(close)
    for k in spec.trend_windows:
        trend = np.full(b - a, np.nan)
        trend[k:] = log_close[k:] - log_close[:-k]
        cols.append(trend / (safe_vol * np.sqrt(k)))
    if spec.vol_long:
        long_vol = np.full(b - a, np.nan)
        long_vol[1:] = _rolling_std(lr[1:], spec.vol_long)
        with np.errstate(divide="ignore", invalid="ignore"):
            cols.append(np.log(realised / np.where(long_vol > 1e-12, long_vol, np.nan)))
    if with_volume:
        lv = np.log1p(c.volume[a:b])
        mu, sd = _rolling_mean(lv, spec.vol_window), _rolling_std(lv, spec.vol_window)
        cols.append((lv - mu) / np.where(sd > 1e-12, sd, np.nan))
    if spec.time_features:
        ts = c.timestamps[a:b].astype(np.int64)
        hour = 2 * np.pi * ((ts // 3600) % 24) / 24.0
        dow = 2 * np.pi * (((ts // 86400) + 3) % 7) / 7.0  # 1970-01-01 was a Thursday: Monday = 0
        cols += [np.sin(hour), np.cos(hour), np.sin(dow), np.cos(dow)]
    out = np.column_stack(cols)
    out[: spec.lookback] = np.nan  # EMA warm-up and rolling windows are unreliable before the look-back
    return out


def compute_raw(c: Candles, spec: FeatureSpec) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Unscaled features [n, F] (NaN where invalid), their names, and each bar's segment stop index."""
    with_volume = c.volume is not None and spec.use_volume
    names = feature_names(spec, c.volume is not None)
    raw = np.full((len(c), len(names)), np.nan)
    seg_end = np.zeros(len(c), dtype=np.int64)
    for a, b in segments(c, spec.max_gap_bars):
        seg_end[a:b] = b
        if b - a > spec.lookback:
            raw[a:b] = _segment_features(c, a, b, spec, with_volume)
    return raw, names, seg_end


def fit_scaler(raw: np.ndarray, start: int, stop: int) -> Scaler:
    """Mean/std per feature over the valid rows of [start, stop) only (the training split)."""
    return fit_scaler_pooled([(raw, start, stop)])


def fit_scaler_pooled(parts: list[tuple[np.ndarray, int, int]]) -> Scaler:
    """One scaler over the valid training rows of several series (assets trained on together)."""
    rows = np.concatenate([raw[a:b] for raw, a, b in parts])
    rows = rows[np.isfinite(rows).all(axis=1)]
    if len(rows) < 10:
        from trader_core.errors import DataError

        raise DataError(f"only {len(rows)} bars with complete features in the training range; need more data")
    std = rows.std(axis=0)
    return Scaler(mean=rows.mean(axis=0).tolist(), std=np.where(std > 1e-12, std, 1.0).tolist())


def pool_features(parts: list[tuple[MarketFeatures, int, int]]) -> MarketFeatures:
    """Bars [a, b) of several feature series (say ETH's and BTC's training splits) as one series.

    Each part keeps its own segments, so an episode never runs from one asset into the next; the env
    samples episode starts across all parts. Parts must share the feature names and the scaler."""
    first = parts[0][0]
    if any(f.names != first.names or f.scaler != first.scaler for f, _, _ in parts):
        from trader_core.errors import ConfigError

        raise ConfigError("pooled series must share feature names and scaler (build them with one scaler)")
    offset, seg_ends = 0, []
    for f, a, b in parts:
        seg_ends.append(np.minimum(f.segment_end[a:b], b) - a + offset)
        offset += b - a
    cs = [f.candles.slice(a, b) for f, a, b in parts]
    volume = None if any(c.volume is None for c in cs) else np.concatenate([c.volume for c in cs])
    candles = Candles(np.concatenate([c.timestamps for c in cs]), np.concatenate([c.open for c in cs]),
                      np.concatenate([c.high for c in cs]), np.concatenate([c.low for c in cs]),
                      np.concatenate([c.close for c in cs]), volume, "+".join(c.name for c in cs),
                      first.candles.interval_s)
    return MarketFeatures(candles, first.spec, first.names, np.concatenate([f.raw[a:b] for f, a, b in parts]),
                          np.concatenate([f.scaled[a:b] for f, a, b in parts]),
                          np.concatenate([f.valid[a:b] for f, a, b in parts]),
                          np.concatenate(seg_ends).astype(np.int64), first.scaler)


def build_features(c: Candles, spec: FeatureSpec | None = None, scaler: Scaler | None = None,
                   fit_range: tuple[int, int] | None = None) -> MarketFeatures:
    """Features for `c`; fit the scaler on `fit_range` (train split) unless one is given (inference)."""
    spec = spec or FeatureSpec()
    raw, names, seg_end = compute_raw(c, spec)
    if scaler is None:
        scaler = fit_scaler(raw, *(fit_range or (0, len(c))))
    if len(scaler.mean) != raw.shape[1]:
        from trader_core.errors import ModelError

        raise ModelError(f"the policy expects {len(scaler.mean)} market features but this data gives "
                         f"{raw.shape[1]} ({'with' if c.volume is not None else 'without'} volume); use data "
                         "with the same columns as the training data")
    valid = np.isfinite(raw).all(axis=1)
    scaled = np.where(valid[:, None], scaler.apply(np.nan_to_num(raw)), 0.0).astype(np.float32)
    return MarketFeatures(c, spec, names, raw, scaled, valid, seg_end, scaler)
