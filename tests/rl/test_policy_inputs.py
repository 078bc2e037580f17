"""What a trained policy reads and when it refuses to answer: its feature spec picks the columns, a stale or
foreign-interval or bad-tick series gets HOLD with the reason, backtests say when they are in-sample, and
gradient clipping still acts after a resume."""

import shutil

import numpy as np
import pytest

from rl.backtest import backtest
from rl.envs.data import load_candles
from rl.policy import Policy
from tests.rl.conftest import synthetic_candles, write_candles_csv
from trader_core.errors import ConfigError, DataError

pytestmark = pytest.mark.slow
NOW = 1_706_558_400  # the close of the bundled data's last bar


def test_an_extra_volume_column_is_ignored_by_a_policy_trained_without_one(trained_run, tmp_path):
    eth = load_candles("chainlink-eth-1h")
    plain, with_volume = tmp_path / "plain.csv", tmp_path / "volume.csv"
    write_candles_csv(plain, eth)
    write_candles_csv(with_volume, eth, volume=np.random.default_rng(0).uniform(10, 1000, len(eth)))
    a = backtest(trained_run, data=str(plain))
    b = backtest(trained_run, data=str(with_volume))
    for name in ("policy", "buy_and_hold", "sma", "flat"):
        assert a[name]["total_return"] == b[name]["total_return"] and a[name]["sharpe"] == b[name]["sharpe"]
    policy = Policy.load(trained_run)
    s1 = policy.signal(load_candles(plain), now=NOW)
    s2 = policy.signal(load_candles(with_volume), now=NOW)
    assert s1.reason is None and s1.q_values == s2.q_values and "volume_z" not in s2.features


def test_a_missing_required_column_is_the_only_column_error(trained_run):
    policy = Policy.load(trained_run)
    policy.feature_names = [*policy.feature_names, "volume_z"]  # as if trained on data with volume
    with pytest.raises(DataError, match="reads a volume column"):
        policy.select_columns(load_candles("chainlink-eth-1h"))


def test_every_signal_shows_its_bar_and_holds_when_the_bar_is_stale(trained_run):
    policy = Policy.load(trained_run)
    stale = policy.signal()  # the bundled data ends in 2024; the wall clock is later
    assert stale.action == "HOLD" and "stale" in stale.reason and "2024-01-29T19:00:00Z" in stale.reason
    assert stale.time == "2024-01-29T19:00:00Z" and stale.age_s > 86400
    assert stale.features["price"] == stale.price and stale.agreement == 0  # the state is shown, not acted on
    fresh = policy.signal(now=NOW + 2 * 3600)  # two bars late is still within three intervals
    assert fresh.reason is None and fresh.age_s == 7200


def test_one_second_bars_are_refused_by_an_hourly_policy(trained_run, tmp_path):
    policy = Policy.load(trained_run)
    rng = np.random.default_rng(0)
    seconds = synthetic_candles(2000 * np.exp(np.cumsum(rng.normal(0, 1e-4, 600))), interval_s=1)
    sig = policy.signal(seconds, now=int(seconds.timestamps[-1]) + 1)
    assert sig.action == "HOLD" and "1s apart" in sig.reason and "3600s" in sig.reason
    path = tmp_path / "seconds.csv"
    write_candles_csv(path, seconds)
    with pytest.raises(DataError, match="1s apart"):
        backtest(trained_run, data=str(path))


@pytest.mark.parametrize("where, value", [(-1, 1e-12), (3000, 1e308)])
def test_a_bad_tick_is_refused_not_traded(trained_run, tmp_path, where, value):
    eth = load_candles("chainlink-eth-1h")
    close = eth.close.copy()
    close[where] = value
    bad = type(eth)(eth.timestamps, np.minimum(eth.open, close), np.maximum(eth.high, close),
                    np.minimum(eth.low, close), close, None, "bad", eth.interval_s)
    sig = Policy.load(trained_run).signal(bad, now=NOW)
    assert sig.action == "HOLD" and "bad tick" in sig.reason  # never BUY on a 1e-12 print
    path = tmp_path / "bad.csv"
    write_candles_csv(path, bad)
    with pytest.raises(DataError, match="bad tick"):
        load_candles(path)


def test_a_backtest_over_the_training_bars_says_so(trained_run):
    inside = backtest(trained_run, start="1990", end="2099")
    assert inside["warnings"] and "overlaps the policy's training" in inside["warnings"][0]
    assert backtest(trained_run)["warnings"] == []  # the held-out test split


def test_ensemble_members_are_chosen_by_seed_and_unknown_seeds_refused(ensemble_run):
    both = Policy.load(ensemble_run)
    assert len(both.models) == 2 and both.run_dir == ensemble_run
    sig = both.signal(now=NOW)
    assert sig.members == 2 and sig.agreement in (0.5, 1.0) and sig.reason is None
    assert len(Policy.load(ensemble_run, seeds=[1]).models) == 1
    with pytest.raises(ConfigError, match="has no seed 99"):
        Policy.load(ensemble_run, seeds=[99])
    report = backtest(ensemble_run)
    assert report["policy"]["members"] == 2 and report["policy_seeds"]["seeds"] == ["seed_0", "seed_1"]


def test_ensemble_signal_is_the_vote_of_its_members(ensemble_run):
    from rl.training.ensemble import decide

    policy = Policy.load(ensemble_run)
    feats = policy.features_for(load_candles("chainlink-eth-1h"))
    env = policy.env_for(feats)
    t = len(feats.candles) - 1
    obs = env.observe(t, 0)
    rows = np.stack([Policy.load(ensemble_run, seeds=[s]).decide(obs).q_mean for s in (0, 1)])
    expected = decide(rows, "vote")
    sig = policy.signal(now=NOW)
    assert sig.q_values == pytest.approx(rows.mean(axis=0).tolist())
    assert sig.agreement == expected.agreement and sig.q_margin == pytest.approx(expected.q_margin)
    assert sig.raw_action == policy.action_names[expected.action]


def test_gradient_clipping_acts_on_the_live_parameters_after_resume(trained_run, tmp_path):
    """A resumed FastDQN must clip the gradients the optimizer steps, not copies unpickled from model.zip."""
    import torch as th

    from rl.training.config import TrainConfig
    from rl.training.fast_dqn import FastDQN
    from rl.training.train import make_train_env, prepare_market

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    cfg = TrainConfig.model_validate_json((run / "config.json").read_text())
    _, _, _, (feats, train_range) = prepare_market(cfg)
    model = FastDQN.load(run / "model.zip", env=make_train_env(cfg, feats, train_range), device="cpu")
    model.load_replay_buffer(run / "replay_buffer.pkl")
    model._q_params = [p.detach().clone().requires_grad_() for p in model.q_net.parameters()]  # an old zip's copy
    model.save(run / "again.zip")
    model = FastDQN.load(run / "again.zip", env=make_train_env(cfg, feats, train_range), device="cpu")
    model.load_replay_buffer(run / "replay_buffer.pkl")
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, []))
    model.max_grad_norm = 1e-3
    norms = []
    step = model.policy.optimizer.step

    def recording_step(*args, **kwargs):
        grads = [p.grad for p in model.q_net.parameters() if p.grad is not None]
        norms.append(float(th.linalg.vector_norm(th.stack([th.linalg.vector_norm(g) for g in grads]))))
        return step(*args, **kwargs)

    model.policy.optimizer.step = recording_step
    model.train(gradient_steps=4, batch_size=32)
    assert len(norms) == 4 and max(norms) <= 1e-3 * 1.0001
