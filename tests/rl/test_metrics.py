import math

import numpy as np
import pytest

from rl import metrics
from rl.envs.trading_env import EnvConfig
from rl.training.evaluate import buy_and_hold_fn, compare, flat_fn, run_backtest
from rl.envs.features import FeatureSpec, build_features
from tests.rl.conftest import synthetic_candles

R = np.array([0.10, -0.05, 0.02, -0.10, 0.04])


def test_metrics_match_hand_computation():
    ppy = metrics.periods_per_year(86400)  # daily bars -> 365
    assert ppy == 365
    growth = 1.10 * 0.95 * 1.02 * 0.90 * 1.04
    assert metrics.total_return(R) == pytest.approx(growth - 1)
    mean = 0.01 / 5 * 1  # (0.10 - 0.05 + 0.02 - 0.10 + 0.04) / 5 = 0.002
    assert np.mean(R) == pytest.approx(0.002)
    sd = math.sqrt(sum((r - 0.002) ** 2 for r in R) / 4)
    assert metrics.sharpe(R, ppy) == pytest.approx(0.002 / sd * math.sqrt(365))
    downside = math.sqrt((0.05**2 + 0.10**2) / 5)
    assert metrics.sortino(R, ppy) == pytest.approx(0.002 / downside * math.sqrt(365))
    # equity 1, 1.1, 1.045, 1.0659, 0.95931, 0.9976824: peak 1.1, trough 0.95931
    assert metrics.max_drawdown(R) == pytest.approx(1 - 0.95931 / 1.1)
    ann = growth ** (365 / 5) - 1
    assert metrics.annualised_return(R, ppy) == pytest.approx(ann)
    assert metrics.calmar(R, ppy) == pytest.approx(ann / (1 - 0.95931 / 1.1))
    assert mean == pytest.approx(0.002)


def test_degenerate_series():
    flat = np.zeros(10)
    assert metrics.sharpe(flat, 8760) == 0.0 and metrics.sortino(flat, 8760) == 0.0
    assert metrics.max_drawdown(flat) == 0.0 and metrics.calmar(flat, 8760) == 0.0
    assert metrics.sortino(np.full(5, 0.01), 8760) == 0.0  # no losses: no downside deviation
    assert metrics.trade_stats([0.1, -0.05, 0.02]) == {"hit_rate": pytest.approx(2 / 3),
                                                       "profit_factor": pytest.approx(0.12 / 0.05)}


def _trend(n=400, drift=0.002, seed=0):
    rng = np.random.default_rng(seed)
    return synthetic_candles(1000 * np.exp(np.cumsum(drift + rng.normal(0, 0.005, n))))


def test_buy_and_hold_backtest_equals_price_return_minus_costs():
    c = _trend()
    feats = build_features(c, FeatureSpec(window=4, vol_window=8, ema_fast=3, ema_slow=6))
    cfg = EnvConfig(pool_depth_usd=1e12)  # negligible impact: the only cost is the 0.3% fee
    start = 20
    res = run_backtest(feats, cfg, start, len(c), buy_and_hold_fn(cfg))
    # decided at close[start], filled at open[start+1] = close[start], marked at the last close
    expected = c.close[-1] / c.open[start + 1] * (1 - cfg.fee) - 1
    assert metrics.total_return(res.returns) == pytest.approx(expected, rel=1e-6)
    assert res.n_trades == 1 and res.fees_paid == pytest.approx(10_000 * cfg.fee)
    flat = run_backtest(feats, cfg, start, len(c), flat_fn(cfg))
    assert metrics.total_return(flat.returns) == 0 and flat.n_trades == 0


def test_compare_reports_every_baseline_over_the_same_bars():
    c = _trend(drift=0.0)
    feats = build_features(c, FeatureSpec(window=4, vol_window=8, ema_fast=3, ema_slow=6))
    report, results = compare(feats, EnvConfig(), 50, len(c), None)
    assert list(report) == ["buy_and_hold", "flat", "random", "sma"]
    assert len({len(r.returns) for r in results.values()}) == 1
    for m in report.values():
        for key in ("total_return", "sharpe", "sortino", "max_drawdown", "n_trades", "fees_paid"):
            assert key in m
    assert report["random"]["n_trades"] > report["sma"]["n_trades"] > 0
    assert report["random"]["fees_paid"] > 0 and report["flat"]["fees_paid"] == 0
