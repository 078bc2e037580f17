"""Position sizing as the action, time-of-day features, Double DQN, and the baselines at the policy's own risk
(constant exposure, volatility targeting), the per-window judgement and the "does it act on the market" check."""

import numpy as np
import pytest

from rl.training import baselines
from rl.envs.trading_env import EnvConfig, TradingEnv
from rl.envs.features import FeatureSpec, build_features
from tests.rl.conftest import make_env, synthetic_candles


def test_size5_resizes_by_the_difference_only(eth_features):
    env = make_env(eth_features, action_set="size5", gas_usd=0.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(2)  # flat -> 50%
    assert info["traded"] and info["exposure"] == pytest.approx(0.5, abs=0.01)
    fee_half = info["fee_usd"]
    _, _, _, _, info = env.step(3)  # 50% -> 75%: buys about a quarter of equity, not a round trip
    assert info["traded"] and info["exposure"] == pytest.approx(0.75, abs=0.01)
    assert info["fee_usd"] == pytest.approx(fee_half / 2, rel=0.05)
    _, _, _, _, info = env.step(3)  # same level: nothing happens
    assert not info["traded"] and info["fee_usd"] == 0.0
    _, _, _, _, info = env.step(0)  # -> 0%: everything sold, flat
    assert info["position"] == 0 and info["units"] == 0.0 and info["cash"] == pytest.approx(info["equity"])
    assert env.n_trades == 3


def test_size5_observation_reports_the_exposure_level(eth_features):
    env = make_env(eth_features, action_set="size5")
    nf = env.features.n_features
    obs = env.observe(env.episode_starts[10], 3)
    assert obs[nf] == pytest.approx(0.75) and obs[nf + 4 + 3] == 1.0  # position feature, previous action TO_75


def test_size5_min_hold_blocks_an_early_resize(eth_features):
    env = make_env(eth_features, action_set="size5", min_hold_bars=4)
    env.reset(seed=1)
    env.step(4)
    _, _, _, _, info = env.step(1)
    assert not info["traded"] and info["exposure"] > 0.9


def test_time_features_are_the_bars_hour_and_weekday():
    close = 2000 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 400)))
    c = synthetic_candles(close)
    spec = FeatureSpec(window=4, vol_window=8, ema_fast=3, ema_slow=6, time_features=True)
    f = build_features(c, spec)
    t = 200
    hour = (int(c.timestamps[t]) // 3600) % 24
    i = f.names.index("hour_sin")
    assert f.raw[t, i] == pytest.approx(np.sin(2 * np.pi * hour / 24))
    assert spec.lookback == FeatureSpec(window=4, vol_window=8, ema_fast=3, ema_slow=6).lookback


def test_search_space_stays_within_one_week_of_one_feed():
    import optuna

    from rl.training.config import TrainConfig
    from rl.tuning.search_space import MAX_LOOKBACK, max_lookback, suggest_recipe

    assert max_lookback() <= MAX_LOOKBACK == 168
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        cfg = suggest_recipe(study.ask(), TrainConfig(also_train_on=["chainlink-btc-1h"]), ["dqn"])
        assert cfg.algo == "dqn" and cfg.features.lookback <= MAX_LOOKBACK


def _trending(n=900, drift=0.0005, seed=3):
    close = 2000 * np.exp(np.cumsum(np.random.default_rng(seed).normal(drift, 0.008, n)))
    return synthetic_candles(close)


def test_constant_exposure_at_full_size_is_buy_and_hold():
    from rl.training.evaluate import buy_and_hold_fn, run_backtest
    from rl.metrics import compute_metrics

    c = _trending()
    feats = build_features(c, FeatureSpec(window=4, vol_window=8, ema_fast=3, ema_slow=6))
    cfg = EnvConfig(action_set="target", gas_usd=1.0)
    bh = compute_metrics(run_backtest(feats, cfg, 100, 800, buy_and_hold_fn(cfg)), 3600)
    full = baselines.constant_exposure(c, 100, 800, cfg, 1.0)
    assert full["total_return"] == pytest.approx(bh["total_return"], rel=1e-9)
    half = baselines.constant_exposure(c, 100, 800, cfg, 0.5)
    assert 0 < half["total_return"] < full["total_return"] and half["max_drawdown"] < full["max_drawdown"]
    assert baselines.constant_exposure(c, 100, 800, cfg, 0.0)["total_return"] == 0.0


def test_vol_target_matches_the_policys_risk():
    c = _trending()
    cfg = EnvConfig(action_set="target")
    policy_returns = np.random.default_rng(0).normal(0, 0.004, 699)
    vt = baselines.vol_target(c, 100, 800, cfg, policy_returns)
    assert vt["bar_volatility"] == pytest.approx(np.std(policy_returns, ddof=1), rel=0.1)
    assert 0 < vt["mean_exposure"] < 1 and vt["n_trades"] >= 1
    flat = baselines.vol_target(c, 100, 800, cfg, np.zeros(699))
    assert flat["n_trades"] == 0 and flat["total_return"] == 0.0


def test_judge_names_the_best_baseline_on_each_measure():
    row = {"policy": {"sharpe": 1.0, "total_return": 0.05, "max_drawdown": 0.05},
           "buy_and_hold": {"sharpe": 2.0, "total_return": 0.10, "max_drawdown": 0.10},
           "flat": {"sharpe": 0.0, "total_return": 0.0, "max_drawdown": 0.0},
           "sma": {"sharpe": -1.0, "total_return": -0.02, "max_drawdown": 0.08}}
    j = baselines.judge(row)
    assert (j["best_sharpe"], j["best_return"], j["best_drawdown"]) == ("buy_and_hold", "buy_and_hold", "flat")
    assert not j["beats_best_sharpe"] and j["drawdown_le_buy_and_hold"]
    assert j["sharpe_excess_over_best"] == pytest.approx(-1.0)


def test_position_predictability_separates_a_rule_from_a_timer():
    positions = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert baselines.position_predictability(positions, np.array([1, 1, 1, 1, 1, 1, 1, 1])) == 1.0
    assert baselines.position_predictability(positions, np.array([0, 1, 0, 1, 0, 1, 0, 1])) == 0.5


def test_double_dqn_trains_saves_and_loads(eth_features, tmp_path):
    from rl.training.algos import algo_class
    from rl.training.config import TrainConfig
    from rl.training.train import fit_model

    feats, split = eth_features
    cfg = TrainConfig(timesteps=600, learning_starts=100, n_envs=4, double_q=True, env=EnvConfig(action_set="size5"))
    model = fit_model(cfg, feats, split.train)
    assert model.double_q and model._n_updates > 0
    model.save(tmp_path / "m.zip")
    assert algo_class("dqn").load(tmp_path / "m.zip").double_q is True
    positions, actions = baselines.decisions_on_states([model], feats, cfg.env, *split.val)
    assert set(positions.tolist()) == {0, 1, 2, 3, 4} and len(actions) == len(positions)
