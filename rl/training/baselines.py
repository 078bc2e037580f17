"""Baselines a policy must beat at its own level of risk, and two checks that it acts on the market at all.

- `constant_exposure`: buy once and hold the policy's own average share of equity in ETH (a policy that only
  "holds about half" is this baseline, whatever its network says).
- `vol_target`: hold min(1, c / trailing volatility) in ETH, rebalanced when the target moves by more than a
  band, with `c` set so its realised volatility equals the policy's (the same average risk, timed by
  volatility alone). Both calibrate on the policy's realised exposure/volatility over the same window, so
  they answer "could a rule with no view of direction have done as well at that risk?".
- `judge`: per window, the policy against the best baseline on Sharpe, return and max drawdown.
- `position_predictability`: the share of the policy's decisions on held-out states that its current
  position alone predicts (1.0: the market features never change what it does).
Both run through `rl.envs.costs` with the policy's fee, pool depth and gas.
"""

from __future__ import annotations

import numpy as np

from rl.envs import costs
from rl.envs.trading_env import EnvConfig, SIZE_LEVELS
from rl.metrics import max_drawdown, sharpe, total_return

VOL_WINDOW = 48  # bars of trailing volatility the vol-targeting baseline reads (two days of hourly bars)
REBALANCE_BAND = 0.1  # vol targeting trades only when its target exposure moved this far (costs)
JUDGED = ("buy_and_hold", "sma", "flat", "const_exposure", "vol_target")


def _summary(returns: np.ndarray, n_trades: int, exposure: np.ndarray, fees: float, traded: float,
             interval_s: int) -> dict:
    from rl.metrics import periods_per_year

    return {"total_return": total_return(returns), "sharpe": sharpe(returns, periods_per_year(interval_s)),
            "max_drawdown": max_drawdown(returns), "n_trades": float(n_trades),
            "time_in_market": float(np.mean(exposure > 1e-9)) if len(exposure) else 0.0,
            "fees_paid": float(fees), "turnover": float(traded / 10_000.0),
            "mean_exposure": float(np.mean(exposure)) if len(exposure) else 0.0,
            "bar_volatility": float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0}


def simulate_exposure(close: np.ndarray, open_: np.ndarray, start: int, stop: int, target: np.ndarray,
                      cfg: EnvConfig, band: float = 0.0) -> tuple[np.ndarray, int, np.ndarray, float, float]:
    """Trade bars [start, stop) towards `target[t]` (share of equity in ETH decided at close[t], filled at
    open[t+1], marked at close[t+1]), like `TradingEnv`'s timing. Returns per-bar returns, trades, exposures,
    fees + impact and traded notional."""
    cash, units = 10_000.0, 0.0
    equity_prev = cash
    rets, expo, n_trades, paid, notional = [], [], 0, 0.0, 0.0
    for t in range(start, stop - 1):
        price = open_[t + 1]
        equity_fill = cash + units * price
        held = units * price / equity_fill if equity_fill > 0 else 0.0
        want = float(target[t])
        if abs(want - held) > band + 1e-12 and (want > 0 or units > 0):
            if want <= 1e-12:
                usdc, fee, impact = costs.sell_eth(units, price, cfg.pool_depth_usd, cfg.fee)
                cash, units, notional = cash + usdc, 0.0, notional + usdc
            elif want > held:
                spend = min(cash, (want - held) * equity_fill)
                eth, fee, impact = costs.buy_eth(spend, price, cfg.pool_depth_usd, cfg.fee)
                cash, units, notional = cash - spend, units + eth, notional + spend
            else:
                sell = (held - want) * equity_fill / price
                usdc, fee, impact = costs.sell_eth(sell, price, cfg.pool_depth_usd, cfg.fee)
                cash, units, notional = cash + usdc, units - sell, notional + usdc
            cash -= cfg.gas_usd
            n_trades += 1
            paid += fee + impact
        equity = cash + units * close[t + 1]
        rets.append(equity / equity_prev - 1.0)
        expo.append(units * close[t + 1] / equity if equity > 0 else 0.0)
        equity_prev = equity
    return np.asarray(rets), n_trades, np.asarray(expo), paid, notional


def trailing_vol(close: np.ndarray, window: int = VOL_WINDOW) -> np.ndarray:
    """Std of hourly log returns over the `window` bars ending at each bar (NaN before)."""
    lr = np.diff(np.log(close), prepend=np.nan)
    out = np.full(len(close), np.nan)
    if len(close) > window:
        out[window:] = np.lib.stride_tricks.sliding_window_view(lr[1:], window).std(axis=1)[: len(close) - window]
    return out


def constant_exposure(candles, start: int, stop: int, cfg: EnvConfig, exposure: float) -> dict:
    """Buy `exposure` of equity in ETH at the first fill and hold it (no rebalancing)."""
    exposure = float(np.clip(exposure, 0.0, 1.0))
    if exposure <= 1e-9:
        n = max(0, stop - start - 1)
        return _summary(np.zeros(n), 0, np.zeros(n), 0.0, 0.0, candles.interval_s)
    res = _buy_once(candles, start, stop, cfg, exposure)
    return _summary(res[0], res[1], res[2], res[3], res[4], candles.interval_s)


def _buy_once(candles, start: int, stop: int, cfg: EnvConfig, exposure: float):
    """Buy at open[start + 1] and let the share drift with the price, as a buy-and-hold does."""
    close, open_ = candles.close, candles.open
    cash, units = 10_000.0, 0.0
    spend = cash * exposure
    eth, fee, impact = costs.buy_eth(spend, open_[start + 1], cfg.pool_depth_usd, cfg.fee)
    cash, units = cash - spend - cfg.gas_usd, eth
    equity = cash + units * close[start + 1: stop]
    rets = np.diff(np.concatenate([[10_000.0], equity])) / np.concatenate([[10_000.0], equity[:-1]])
    return rets, 1, units * close[start + 1: stop] / equity, fee + impact, spend


def vol_target(candles, start: int, stop: int, cfg: EnvConfig, policy_returns: np.ndarray) -> dict:
    """Volatility targeting whose realised volatility matches `policy_returns`' (bisection on the budget)."""
    target_sd = float(np.std(policy_returns, ddof=1)) if len(policy_returns) > 1 else 0.0
    sigma = trailing_vol(candles.close)
    sigma = np.where(np.isfinite(sigma) & (sigma > 1e-9), sigma, np.nanmedian(sigma))

    def run(c: float):
        return simulate_exposure(candles.close, candles.open, start, stop, np.minimum(1.0, c / sigma), cfg,
                                 REBALANCE_BAND)

    if target_sd <= 1e-12:
        res = run(0.0)
    else:
        lo, hi = 0.0, 1.0
        while np.std(run(hi)[0], ddof=1) < target_sd and hi < 1e3:  # c large enough to reach the risk
            hi *= 4.0
        for _ in range(18):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if np.std(run(mid)[0], ddof=1) < target_sd else (lo, mid)
        res = run(0.5 * (lo + hi))
    return _summary(res[0], res[1], res[2], res[3], res[4], candles.interval_s)


def judge(row: dict, names: tuple[str, ...] = JUDGED) -> dict:
    """The policy against the best baseline of the window on each measure (ties count for the policy)."""
    present = [n for n in names if n in row]
    best_sharpe = max(present, key=lambda n: row[n]["sharpe"])
    best_return = max(present, key=lambda n: row[n]["total_return"])
    best_dd = min(present, key=lambda n: row[n]["max_drawdown"])
    p = row["policy"]
    return {"best_sharpe": best_sharpe, "beats_best_sharpe": p["sharpe"] >= row[best_sharpe]["sharpe"] - 1e-12,
            "best_return": best_return,
            "beats_best_return": p["total_return"] >= row[best_return]["total_return"] - 1e-12,
            "best_drawdown": best_dd, "beats_best_drawdown": p["max_drawdown"] <= row[best_dd]["max_drawdown"] + 1e-12,
            "drawdown_le_buy_and_hold": p["max_drawdown"] <= row["buy_and_hold"]["max_drawdown"] + 1e-12,
            "sharpe_excess_over_best": p["sharpe"] - row[best_sharpe]["sharpe"]}


# -- does the policy act on the market? -------------------------------------------------------------------
def position_levels(cfg: EnvConfig) -> list[int]:
    """The positions a policy can be asked about: exposure levels (size5), or flat/long(/short)."""
    if cfg.action_set in SIZE_LEVELS:
        return list(range(len(SIZE_LEVELS[cfg.action_set])))
    return [-1, 0, 1] if cfg.allow_short else [0, 1]


def batch_q_values(model, obs: np.ndarray) -> np.ndarray:
    """`rl.training.algos.q_values` for a batch of observations."""
    import torch

    with torch.no_grad():
        x = torch.as_tensor(obs, dtype=torch.float32)
        if hasattr(model, "quantile_net"):
            return model.quantile_net(x).mean(dim=1).numpy()
        if hasattr(model, "q_net"):
            return model.q_net(x).numpy()
        return model.policy.get_distribution(x).distribution.logits.numpy()


def decisions_on_states(models: list, feats, cfg: EnvConfig, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(position, action) of the ensemble's vote for every valid bar of [start, stop) x every position."""
    from rl.training.ensemble import decide
    from rl.envs.trading_env import TradingEnv

    env = TradingEnv(feats, cfg, start, stop, random_start=False)
    bars = [t for t in range(start, stop - 1) if feats.valid[t]]
    positions, obs = [], []
    for p in position_levels(cfg):
        for t in bars:
            obs.append(env.observe(t, p))
            positions.append(p)
    if not obs:
        return np.zeros(0, int), np.zeros(0, int)
    q = np.stack([batch_q_values(m, np.stack(obs)) for m in models], axis=1)  # [states, members, actions]
    actions = q[:, 0].argmax(axis=1) if len(models) == 1 else np.array([decide(rows).action for rows in q])
    return np.asarray(positions), actions


def position_predictability(positions: np.ndarray, actions: np.ndarray) -> float:
    """Accuracy of the best rule that sees only the position: its most common action per position."""
    if len(actions) == 0:
        return 1.0
    hits = sum(int(np.bincount(actions[positions == p]).max()) for p in np.unique(positions))
    return hits / len(actions)
