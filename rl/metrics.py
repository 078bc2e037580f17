"""Performance metrics as pure functions of a per-bar return series (fractions, not %).

Sharpe and Sortino are annualised from the bar interval (periods per year = 365 days / interval);
a series without variance has Sharpe 0 and a series without losses has Sortino 0.
"""

from __future__ import annotations

import math

import numpy as np

SECONDS_PER_YEAR = 365 * 86400


def periods_per_year(interval_s: int) -> float:
    return SECONDS_PER_YEAR / interval_s if interval_s > 0 else 8760.0


def total_return(returns: np.ndarray) -> float:
    return float(np.prod(1.0 + returns) - 1.0) if len(returns) else 0.0


def annualised_return(returns: np.ndarray, ppy: float) -> float:
    if len(returns) == 0:
        return 0.0
    growth = 1.0 + total_return(returns)
    return float(growth ** (ppy / len(returns)) - 1.0) if growth > 0 else -1.0


def volatility(returns: np.ndarray, ppy: float) -> float:
    return float(np.std(returns, ddof=1) * math.sqrt(ppy)) if len(returns) > 1 else 0.0


def sharpe(returns: np.ndarray, ppy: float) -> float:
    if len(returns) < 2:
        return 0.0
    sd = np.std(returns, ddof=1)
    return float(np.mean(returns) / sd * math.sqrt(ppy)) if sd > 1e-15 else 0.0


def sortino(returns: np.ndarray, ppy: float) -> float:
    if len(returns) < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    return float(np.mean(returns) / downside * math.sqrt(ppy)) if downside > 1e-15 else 0.0


def max_drawdown(returns: np.ndarray) -> float:
    """Largest peak-to-trough fall of the equity curve, as a positive fraction."""
    if len(returns) == 0:
        return 0.0
    equity = np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    return float(np.max(1.0 - equity / np.maximum.accumulate(equity)))


def calmar(returns: np.ndarray, ppy: float) -> float:
    mdd = max_drawdown(returns)
    return annualised_return(returns, ppy) / mdd if mdd > 1e-15 else 0.0


def trade_stats(trade_returns: list[float]) -> dict[str, float | None]:
    """Hit rate and profit factor over closed trades' returns (net of costs)."""
    if not trade_returns:
        return {"hit_rate": 0.0, "profit_factor": None}
    arr = np.asarray(trade_returns)
    gains, losses = arr[arr > 0].sum(), -arr[arr < 0].sum()
    return {"hit_rate": float((arr > 0).mean()),
            "profit_factor": float(gains / losses) if losses > 0 else None}


def compute_metrics(result, interval_s: int) -> dict:
    """All report metrics for a `BacktestResult` (see rl.training.evaluate)."""
    r = result.returns
    ppy = periods_per_year(interval_s)
    mean_equity = float(np.mean(result.equity)) if len(result.equity) else 1.0
    out = {
        "total_return": total_return(r),
        "annualised_return": annualised_return(r, ppy),
        "volatility": volatility(r, ppy),
        "sharpe": sharpe(r, ppy),
        "sortino": sortino(r, ppy),
        "calmar": calmar(r, ppy),
        "max_drawdown": max_drawdown(r),
        "n_trades": int(result.n_trades),
        **trade_stats(result.trade_returns),
        "turnover": float(result.traded_notional / mean_equity) if mean_equity > 0 else 0.0,
        "time_in_market": float(np.mean(result.positions != 0)) if len(result.positions) else 0.0,
        "mean_exposure": float(np.mean(result.exposures)) if len(getattr(result, "exposures", [])) else 0.0,
        "fees_paid": float(result.fees_paid),
        "impact_paid": float(result.impact_paid),
        "gas_paid": float(result.gas_paid),
        "n_bars": int(len(r)),
        "action_distribution": result.action_distribution(),
    }
    return out
