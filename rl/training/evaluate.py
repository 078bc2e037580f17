"""Backtests: run any decision rule through the same env (same fills, fees, price impact, gas) and compare
the policy with buy-and-hold, always-flat, random (mean of seeds) and an SMA crossover.

Bars before the backtest start serve only as feature history; trading and metrics cover [start, stop).
A range crossing a data gap is traded segment by segment, each starting flat, and the returns chained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from rl.envs.trading_env import KEEP, EnvConfig, TradingEnv, target_table
from rl.envs.features import MarketFeatures
from rl.metrics import compute_metrics

ActionFn = Callable[[np.ndarray, TradingEnv], int]
RANDOM_SEEDS = (0, 1, 2, 3, 4)


@dataclass
class BacktestResult:
    action_names: list[str]
    timestamps: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    returns_list: list[float] = field(default_factory=list)
    positions_list: list[int] = field(default_factory=list)
    exposures: list[float] = field(default_factory=list)  # share of equity in ETH after each bar
    actions: list[int] = field(default_factory=list)
    trades: list[dict] = field(default_factory=list)
    trade_returns: list[float] = field(default_factory=list)
    fees_paid: float = 0.0
    impact_paid: float = 0.0
    gas_paid: float = 0.0
    traded_notional: float = 0.0

    @property
    def returns(self) -> np.ndarray:
        return np.asarray(self.returns_list)

    @property
    def positions(self) -> np.ndarray:
        return np.asarray(self.positions_list)

    @property
    def n_trades(self) -> int:
        return len(self.trades)

    def action_distribution(self) -> dict[str, float]:
        counts = np.bincount(np.asarray(self.actions, dtype=int), minlength=len(self.action_names))
        total = max(1, counts.sum())
        return {name: float(c / total) for name, c in zip(self.action_names, counts)}


def action_for_target(targets: list[list[int]], position: int, target: int) -> int:
    """The action that moves `position` to `target` (0 = hold when already there)."""
    if target == position:
        return 0 if targets[0][position + 1] == KEEP else next(
            a for a, row in enumerate(targets) if row[position + 1] == KEEP)
    for a, row in enumerate(targets):
        if row[position + 1] == target:
            return a
    return 0


def run_backtest(feats: MarketFeatures, cfg: EnvConfig, start: int, stop: int, action_fn: ActionFn) -> BacktestResult:
    """Trade [start, stop) with `action_fn(obs, env)`; deterministic, no equity-floor termination."""
    cfg = cfg.model_copy(update={"equity_floor": 0.0})
    env = TradingEnv(feats, cfg, start, stop, random_start=False)
    result = BacktestResult(cfg.action_names)
    seg_end = feats.segment_end
    seg_starts, seen = [], set()
    for s in env.episode_starts.tolist():  # first tradable bar of each continuous segment
        if seg_end[s] not in seen:
            seen.add(seg_end[s])
            seg_starts.append(s)
    ts = feats.candles.timestamps
    for s in seg_starts:
        obs, info = env.reset(options={"start": s, "length": None})
        prev_equity = env.equity
        while True:
            a = int(action_fn(obs, env))
            pos_before = env.position
            obs, _, _, truncated, info = env.step(a)
            result.actions.append(a)
            result.timestamps.append(int(ts[info["t"]]))
            result.equity.append(info["equity"])
            result.returns_list.append(info["equity"] / prev_equity - 1.0)
            result.positions_list.append(info["position"])
            result.exposures.append(info["exposure"])
            prev_equity = info["equity"]
            if info["traded"]:
                fill_t = info["t"] if cfg.fill == "next_open" else info["t"] - 1
                fill_price = float(feats.candles.open[fill_t] if cfg.fill == "next_open"
                                   else feats.candles.close[fill_t])
                result.trades.append({"timestamp": int(ts[fill_t]), "action": cfg.action_names[a],
                                      "from_position": pos_before, "to_position": info["position"],
                                      "price": fill_price, "fee_usd": info["fee_usd"],
                                      "impact_usd": info["impact_usd"], "gas_usd": info["gas_usd"],
                                      "equity_after": info["equity"]})
                result.fees_paid += info["fee_usd"]
                result.impact_paid += info["impact_usd"]
                result.gas_paid += info["gas_usd"]
                result.traded_notional += info["fee_usd"] / cfg.fee if cfg.fee > 0 else abs(info["units"]) * fill_price
                if pos_before != 0:
                    result.trade_returns.append(env.last_trade_return)
            if truncated:
                break
    return result


# -- baselines: decision rules over the same env ---------------------------------------------------------
def buy_and_hold_fn(cfg: EnvConfig) -> ActionFn:
    targets = target_table(cfg)
    return lambda obs, env: action_for_target(targets, env.position, 1)


def flat_fn(cfg: EnvConfig) -> ActionFn:
    targets = target_table(cfg)
    return lambda obs, env: action_for_target(targets, env.position, 0)


def random_fn(cfg: EnvConfig, seed: int) -> ActionFn:
    rng = np.random.default_rng(seed)
    n = len(cfg.action_names)
    return lambda obs, env: int(rng.integers(n))


def sma_fn(cfg: EnvConfig, feats: MarketFeatures, fast: int = 12, slow: int = 48) -> ActionFn:
    """Long when the fast SMA of closes is above the slow one (computed causally), else flat."""
    close = feats.candles.close
    csum = np.concatenate([[0.0], np.cumsum(close)])
    idx = np.arange(len(close))
    sma_f = (csum[idx + 1] - csum[np.maximum(idx + 1 - fast, 0)]) / np.minimum(idx + 1, fast)
    sma_s = (csum[idx + 1] - csum[np.maximum(idx + 1 - slow, 0)]) / np.minimum(idx + 1, slow)
    long_signal = (sma_f > sma_s).tolist()
    targets = target_table(cfg)
    return lambda obs, env: action_for_target(targets, env.position, 1 if long_signal[env.t] else 0)


def baseline_env(cfg: EnvConfig) -> EnvConfig:
    """The market a baseline trades: the policy's costs and action set, full-size positions, no holding rule
    (a skeptic's buy-and-hold puts the whole account in, whatever sizing the policy learned with)."""
    from rl.envs.trading_env import SIZE_LEVELS

    # a sizing policy's baselines still trade all-in or all-out
    action_set = "target" if cfg.action_set in SIZE_LEVELS else cfg.action_set
    return cfg.model_copy(update={"position_size": 1.0, "vol_target": None, "min_hold_bars": 0, "cost_penalty": 0.0,
                                  "action_set": action_set})


def _mean_metrics(ms: list[dict]) -> dict:
    out = {}
    for k, v in ms[0].items():
        if isinstance(v, dict):
            out[k] = {kk: float(np.mean([m[k][kk] for m in ms])) for kk in v}
        elif v is None or any(m[k] is None for m in ms):
            vals = [m[k] for m in ms if m[k] is not None]
            out[k] = float(np.mean(vals)) if vals else None
        else:
            out[k] = float(np.mean([m[k] for m in ms]))
    out["n_trades"] = float(out["n_trades"])
    return out


def compare(feats: MarketFeatures, cfg: EnvConfig, start: int, stop: int,
            policy_fn: ActionFn | None) -> tuple[dict[str, dict], dict[str, BacktestResult]]:
    """Metrics for the policy (if given) and every baseline over the same bars and costs (baselines at full size,
    see `baseline_env`), plus their raw results."""
    interval = feats.candles.interval_s
    base = baseline_env(cfg)
    results = {} if policy_fn is None else {"policy": run_backtest(feats, cfg, start, stop, policy_fn)}
    rules = {"buy_and_hold": buy_and_hold_fn(base), "flat": flat_fn(base), "sma": sma_fn(base, feats)}
    results.update({name: run_backtest(feats, base, start, stop, fn) for name, fn in rules.items()})
    metrics = {name: compute_metrics(res, interval) for name, res in results.items()}
    randoms = [compute_metrics(run_backtest(feats, base, start, stop, random_fn(base, s)), interval)
               for s in RANDOM_SEEDS]
    metrics["random"] = _mean_metrics(randoms)
    order = ["policy", "buy_and_hold", "flat", "random", "sma"]
    return {k: metrics[k] for k in order if k in metrics}, results
