"""Market data: bundled real datasets by name, candle CSV loading, strict validation, swap-event candles.

Lives on the ground floor because both the RL stack (training data) and the on-chain replica (seed price,
historical replay) read it, and those two packages must not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trader_core.errors import DataError

DATASETS_DIR = Path(__file__).parent / "datasets"

# name -> (file, kind, description). Swap-event sets become candles of a chosen interval (default 1h).
DATASETS: dict[str, tuple[str, str, str]] = {
    "chainlink-eth-1h": ("chainlink-eth-1h.csv", "candles", "Chainlink ETH/USD hourly OHLC, 2023-04..2024-01"),
    "chainlink-btc-1h": ("chainlink-btc-1h.csv", "candles", "Chainlink BTC/USD hourly OHLC, 2023-04..2024-01"),
    "univ3-polygon-eth-1h": ("univ3-polygon-eth-1h.csv", "candles", "Uniswap V3 USDC/WETH Polygon 1h OHLCV, 2022"),
    "univ3-polygon-eth-5m": ("univ3-polygon-eth-5m.csv", "candles", "Uniswap V3 USDC/WETH Polygon 5m OHLCV, 2022"),
    "univ4-base-eth-swaps": ("univ4-base-eth-swaps.csv", "swaps", "10k Uniswap V4 ETH/USDC swaps on Base, 2025"),
}
DEFAULT_DATASET = "chainlink-eth-1h"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A price that moves more than this factor within or between two bars is a bad tick (a 1e308 or 1e-12
# print), not a market move: it would poison every rolling feature that window touches.
MAX_BAR_MOVE = 100.0


@dataclass(frozen=True)
class Candles:
    """OHLC(V) bars as plain numpy arrays (float64 prices, int64 unix-second timestamps)."""

    timestamps: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray | None = None
    name: str = "custom"
    interval_s: int = field(default=0)

    def __len__(self) -> int:
        return len(self.close)

    def slice(self, start: int, stop: int) -> "Candles":
        vol = None if self.volume is None else self.volume[start:stop]
        return Candles(self.timestamps[start:stop], self.open[start:stop], self.high[start:stop],
                       self.low[start:stop], self.close[start:stop], vol, self.name, self.interval_s)

    def without_volume(self) -> "Candles":
        return Candles(self.timestamps, self.open, self.high, self.low, self.close, None, self.name, self.interval_s)

    def index_at(self, when: str | int | float) -> int:
        """First bar index with timestamp >= `when` (ISO date/time or unix seconds)."""
        return int(np.searchsorted(self.timestamps, parse_time(when), side="left"))


def parse_interval(text: str | int) -> int:
    """'5m' -> 300, '1h' -> 3600, 60 -> 60."""
    if isinstance(text, int):
        return text
    text = str(text).strip().lower()
    try:
        if text[-1] in _UNITS:
            return int(float(text[:-1]) * _UNITS[text[-1]])
        return int(text)
    except (ValueError, IndexError):
        raise DataError(f"bad interval {text!r}; use a number with a unit such as 5m, 1h or 1d") from None


def parse_time(when: str | int | float) -> int:
    """ISO-8601 date/time (UTC if no zone) or unix seconds -> unix seconds."""
    bad = DataError(f"bad date {when!r}; use ISO-8601 such as 2023-10-01 or 2023-10-01T12:00Z")
    if isinstance(when, (int, float, np.integer, np.floating)):
        if not np.isfinite(when):
            raise bad
        return int(when)
    import pandas as pd

    try:
        ts = pd.Timestamp(str(when))
    except (ValueError, TypeError, OverflowError):
        raise bad from None
    if ts is pd.NaT or pd.isna(ts):  # "nan", "NaT" and "" parse to NaT
        raise bad
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.timestamp())


def resolve_dataset(name_or_path: str | Path) -> tuple[Path, str]:
    """A bundled dataset name or a file path -> (path, kind)."""
    key = str(name_or_path)
    if key in DATASETS:
        file, kind, _ = DATASETS[key]
        return DATASETS_DIR / file, kind
    path = Path(key).expanduser()
    if not path.exists():
        names = ", ".join(DATASETS)
        raise DataError(f"no dataset named or file at {key!r}; use one of: {names}, or a path to a candle CSV")
    return path, "auto"


def load_candles(name_or_path: str | Path = DEFAULT_DATASET, interval: str | int | None = None) -> Candles:
    """Load and validate candles from a bundled name or a CSV path (candles or Uniswap swap events)."""
    import pandas as pd

    path, kind = resolve_dataset(name_or_path)
    try:
        # on-chain integers stay text: int64 overflows and a float column would round them
        frame = pd.read_csv(path, dtype={"sqrt_price_x96": str, "amount0": str})
    except Exception as exc:
        raise DataError(f"{path}: cannot read as CSV ({exc})") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    name = str(name_or_path) if str(name_or_path) in DATASETS else path.stem
    if kind == "swaps" or (kind == "auto" and {"sqrt_price_x96", "amount0"} <= set(frame.columns)):
        return swaps_to_candles(frame, parse_interval(interval or "1h"), name=name, source=str(path))
    candles = _frame_to_candles(frame, name=name, source=str(path))
    if interval is not None and parse_interval(interval) != candles.interval_s:
        raise DataError(f"{path}: bars are {candles.interval_s}s apart, not {interval}; resampling candles "
                        "is not supported, pass a file at the interval you want")
    return candles


def _parse_timestamps(col, source: str) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col):
        values = col.to_numpy(dtype="float64")
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise DataError(f"{source}: row {bad[0] + 2}: timestamp is empty or not a number")
        # unix milliseconds are > 1e11 for any date after 1973
        return (values // 1000).astype(np.int64) if np.nanmax(values) > 1e11 else values.astype(np.int64)
    parsed = pd.to_datetime(col, utc=True, errors="coerce", format="mixed")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        raise DataError(f"{source}: row {bad[0] + 2}: cannot parse timestamp {col.iloc[bad[0]]!r} "
                        "(use ISO-8601 or unix seconds/milliseconds)")
    # resolution-agnostic (pandas 3 may store s, ms, us or ns): convert to whole seconds explicitly
    return parsed.dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64)


def _frame_to_candles(frame, name: str, source: str) -> Candles:
    import pandas as pd

    required = ["timestamp", "open", "high", "low", "close"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; a candle CSV needs "
                        "timestamp, open, high, low, close (volume optional)")
    if len(frame) < 2:
        raise DataError(f"{source}: needs at least 2 rows of candles, found {len(frame)}")
    ts = _parse_timestamps(frame["timestamp"], source)
    arrays = {}
    for col in ["open", "high", "low", "close"]:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype="float64")
        bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
        if bad.size:
            raise DataError(f"{source}: row {bad[0] + 2}: {col} must be a positive finite number, "
                            f"got {frame[col].tolist()[bad[0]]}")
        arrays[col] = values
    volume = None
    if "volume" in frame.columns:
        vol = pd.to_numeric(frame["volume"], errors="coerce").to_numpy(dtype="float64")
        if np.isfinite(vol).all():
            bad = np.flatnonzero(vol < 0)
            if bad.size:
                raise DataError(f"{source}: row {bad[0] + 2}: volume must be >= 0, got {vol[bad[0]]}")
            volume = vol
        # an empty or partly empty volume column (Chainlink has none) means: no volume feature
    candles = Candles(ts, arrays["open"], arrays["high"], arrays["low"], arrays["close"], volume, name,
                      interval_s=_median_interval(ts))
    validate_candles(candles, source)
    return candles


def _median_interval(ts: np.ndarray) -> int:
    diffs = np.diff(ts)
    return int(np.median(diffs)) if diffs.size else 0


def validate_candles(c: Candles, source: str = "candles") -> None:
    """Sorted unique timestamps, positive finite prices, high >= max(open, close), low <= min(open, close)."""
    diffs = np.diff(c.timestamps)
    bad = np.flatnonzero(diffs <= 0)
    if bad.size:
        i = bad[0] + 1
        problem = "duplicate" if diffs[bad[0]] == 0 else "out-of-order"
        raise DataError(f"{source}: row {i + 2}: {problem} timestamp (timestamps must be sorted and unique)")
    for label, arr in (("open", c.open), ("high", c.high), ("low", c.low), ("close", c.close)):
        bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0))
        if bad.size:
            raise DataError(f"{source}: row {bad[0] + 2}: {label} must be a positive finite number")
    tol = 1e-9
    body_hi = np.maximum(c.open, c.close)
    bad = np.flatnonzero(c.high < body_hi * (1 - tol))
    if bad.size:
        i = bad[0]
        raise DataError(f"{source}: row {i + 2}: high {c.high[i]} is below max(open, close) {body_hi[i]}")
    body_lo = np.minimum(c.open, c.close)
    bad = np.flatnonzero(c.low > body_lo * (1 + tol))
    if bad.size:
        i = bad[0]
        raise DataError(f"{source}: row {i + 2}: low {c.low[i]} is above min(open, close) {body_lo[i]}")
    check_bad_ticks(c, source)


def check_bad_ticks(c: Candles, source: str = "candles") -> None:
    """Refuse a price that jumps by more than `MAX_BAR_MOVE`x within a bar or from one close to the next."""
    with np.errstate(over="ignore", divide="ignore"):
        step = np.abs(np.log(c.close[1:]) - np.log(c.close[:-1]))
        intrabar = np.log(c.high) - np.log(c.low)
    limit = np.log(MAX_BAR_MOVE)
    bad = np.flatnonzero(step > limit)
    if bad.size:
        i = bad[0] + 1
        raise DataError(f"{source}: row {i + 2}: close {c.close[i]:.6g} after {c.close[i - 1]:.6g} is a "
                        f"move of more than {MAX_BAR_MOVE:.0f}x in one bar, a bad tick; fix or remove the row")
    bad = np.flatnonzero(intrabar > limit)
    if bad.size:
        i = bad[0]
        raise DataError(f"{source}: row {i + 2}: high {c.high[i]:.6g} and low {c.low[i]:.6g} are more than "
                        f"{MAX_BAR_MOVE:.0f}x apart, a bad tick; fix or remove the row")


def swaps_to_candles(frame, interval_s: int, name: str = "swaps", source: str = "swaps") -> Candles:
    """Uniswap swap events (sqrtPriceX96, amount0 in wei) -> OHLCV candles in USDC per ETH.

    Price = (sqrtPriceX96 / 2**96)**2 * 1e12 (token0 = ETH with 18 decimals, token1 = USDC with 6).
    Volume = |amount0| in ETH. Intervals with no swap repeat the last close with zero volume.
    """
    needed = ["timestamp", "sqrt_price_x96", "amount0"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)} for swap events")
    if interval_s <= 0:
        raise DataError(f"{source}: interval must be positive, got {interval_s}s")
    if len(frame) == 0:
        raise DataError(f"{source}: no swap events (only a header); need at least one row")
    ts = _parse_timestamps(frame["timestamp"], source)
    order = np.argsort(ts, kind="stable")
    sqrt_p = _integer_column(frame["sqrt_price_x96"], "sqrt_price_x96", source)[order]
    price = (sqrt_p / 2.0**96) ** 2 * 1e12
    amount0 = np.abs(_integer_column(frame["amount0"], "amount0", source))[order] / 1e18
    ts = ts[order]
    if not np.isfinite(price).all() or (price <= 0).any():
        raise DataError(f"{source}: sqrt_price_x96 must be positive")
    return bucket_prices(ts, price, amount0, interval_s, name, source)


def bucket_prices(timestamps, prices, volumes, interval_s: int, name: str = "live",
                  source: str | None = None) -> Candles:
    """Price observations (trades, or a read of a pool's state) -> OHLCV bars on the `interval_s` grid.

    Bars are stamped with their open time (ts // interval * interval). An interval without observations
    repeats the previous close with zero volume: a pool's price only changes when someone trades.
    """
    if interval_s <= 0:
        raise DataError(f"{name}: the bar interval must be positive, got {interval_s}s")
    ts = np.asarray(timestamps, dtype=np.int64)
    px = np.asarray(prices, dtype=np.float64)
    vol = np.asarray(volumes, dtype=np.float64)
    if ts.size == 0:
        raise DataError(f"{name}: no price observations to build bars from")
    if not (np.isfinite(px).all() and (px > 0).all()):
        raise DataError(f"{name}: prices must be positive finite numbers")
    order = np.argsort(ts, kind="stable")
    ts, px, vol = ts[order], px[order], np.abs(np.nan_to_num(vol[order]))
    idx = ts // interval_s - ts[0] // interval_s
    n = int(idx[-1]) + 1
    o, h, lo, c = np.full(n, np.nan), np.full(n, -np.inf), np.full(n, np.inf), np.full(n, np.nan)
    v = np.zeros(n)
    np.maximum.at(h, idx, px)
    np.minimum.at(lo, idx, px)
    np.add.at(v, idx, vol)
    starts = np.r_[0, np.flatnonzero(np.diff(idx)) + 1]
    ends = np.r_[starts[1:] - 1, len(idx) - 1]
    o[idx[starts]] = px[starts]
    c[idx[ends]] = px[ends]
    for i in np.flatnonzero(np.isnan(c)):  # carry the last price through intervals without trades
        o[i] = c[i] = h[i] = lo[i] = c[i - 1]
    stamps = (ts[0] // interval_s + np.arange(n)) * interval_s
    candles = Candles(stamps.astype(np.int64), o, h, lo, c, v, name, int(interval_s))
    validate_candles(candles, source or name)
    return candles


def _integer_column(col, name: str, source: str) -> np.ndarray:
    """An on-chain integer column (uint160 / int256: beyond int64, so parsed as Python ints) as float64."""
    out = np.empty(len(col), dtype="float64")
    for i, v in enumerate(col.tolist()):
        text = "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else str(v).strip()
        try:
            out[i] = float(int(text))
        except ValueError:
            shown = "empty" if text in ("", "nan") else repr(text)  # noqa: E501
            raise DataError(f"{source}: row {i + 2}: {name} must be an integer, got {shown}") from None
    return out


def segments(c: Candles, max_gap_bars: float = 3.0) -> list[tuple[int, int]]:
    """Continuous runs [start, stop) split wherever the gap exceeds `max_gap_bars` bar intervals."""
    if len(c) == 0:
        return []
    step = c.interval_s or _median_interval(c.timestamps) or 1
    breaks = np.flatnonzero(np.diff(c.timestamps) > max_gap_bars * step) + 1
    bounds = np.r_[0, breaks, len(c)]
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
