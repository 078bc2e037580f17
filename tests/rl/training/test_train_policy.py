"""A real (short) SB3 training run end to end, then the CLI contracts on it."""

import json
import os

import numpy as np
import pytest

from rl.training.config import TrainConfig
from rl.envs.data import load_candles
from rl.envs.features import fit_scaler
from rl.policy import Policy, q_values
from rl.training.train import train
from tests.conftest import run_trader

pytestmark = pytest.mark.slow


def run_cli(*args, home):
    env = {**os.environ, "TRADER_HOME": str(home)}
    return run_trader(args, env=env)


@pytest.fixture(scope="module")
def run_dir(trained_run):
    return trained_run


NOW = 1_706_558_400  # 2024-01-29T20:00Z: right after the bundled data's last bar closes


def test_training_writes_a_complete_run(run_dir):
    for name in ("model.zip", "best_model.zip", "config.json", "features.json", "metrics.json"):
        assert (run_dir / name).exists(), name
    assert any((run_dir / "tb").rglob("events.out.tfevents*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["timesteps"] == 3000 and len(metrics["validation"]) == 3
    best = max(metrics["validation"], key=lambda h: h["val_sharpe"])
    assert metrics["best_validation"] == best
    cfg = TrainConfig.model_validate_json((run_dir / "config.json").read_text())
    assert cfg.timesteps == 3000 and cfg.env.fee == 0.003


def test_scaler_is_fitted_on_the_training_split_only(run_dir):
    policy = Policy.load(run_dir)
    candles = load_candles(policy.config.data)
    feats = policy.features_for(candles)
    from rl.envs.data import split_by_dates

    sp = split_by_dates(candles, gap=policy.config.features.lookback)
    assert np.allclose(policy.scaler.mean, fit_scaler(feats.raw, *sp.train).mean)
    assert not np.allclose(policy.scaler.mean, fit_scaler(feats.raw, 0, len(candles)).mean)


def test_resume_continues_the_same_run(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "resumed"
    shutil.copytree(run_dir, copy)
    cfg = TrainConfig.model_validate_json((copy / "config.json").read_text()).model_copy(update={"timesteps": 1000})
    metrics = train(cfg, copy, resume=True, progress=False)
    assert metrics["timesteps"] == 4000 and metrics["runs"] == 2
    assert len(metrics["validation"]) == 4


def test_signal_and_rollout_use_real_decisions(run_dir):
    policy = Policy.load(run_dir)
    sig = policy.signal(now=NOW)
    assert sig.action in ("BUY", "SELL", "HOLD") and sig.reason is None
    q = sorted(sig.q_values, reverse=True)
    assert len(sig.q_values) == 3 and sig.agreement == 1.0 and sig.members == 1
    assert sig.q_margin == pytest.approx(q[0] - q[1], rel=1e-5)  # the gap to the runner-up, not a softmax
    assert sig.time == "2024-01-29T19:00:00Z" and sig.age_s == 0
    assert {"realised_vol", "position", "price"} <= set(sig.features)
    decisions = policy.rollout(episodes=3, steps=20, seed=1)
    assert len(decisions) == 60
    again = policy.rollout(episodes=3, steps=20, seed=1)
    assert [d.model_dump() for d in decisions] == [d.model_dump() for d in again]
    assert all(d.eth >= 0 and d.usdc >= 0 and d.volatility > 0 for d in decisions)


def test_safety_switch_holds_with_a_reason(run_dir):
    policy = Policy.load(run_dir)
    short = load_candles("chainlink-eth-1h").slice(0, 50)  # not enough history for the features
    sig = policy.signal(short, now=int(short.timestamps[-1]))
    assert sig.action == "HOLD" and "look-back is not covered" in sig.reason
    assert policy.signal(position=float("nan"), now=NOW).reason.startswith("unexpected position")

    class Broken:
        def __getattr__(self, name):
            raise RuntimeError("weights corrupted")

    policy.models = [Broken()]
    sig = policy.signal(now=NOW)
    assert sig.action == "HOLD" and "model error" in sig.reason


@pytest.mark.parametrize("algo", ["qrdqn", "ppo", "a2c"])
def test_every_algorithm_has_the_same_shape(tmp_path, algo):
    cfg = TrainConfig(algo=algo, timesteps=600, learning_starts=200, eval_freq=300, n_envs=2)
    metrics = train(cfg, tmp_path, progress=False)
    assert metrics["algo"] == algo and metrics["validation"]
    policy = Policy.load(tmp_path)
    obs = np.zeros(policy.model.observation_space.shape, np.float32)
    assert len(q_values(policy.model, obs)) == 3
    sig = policy.signal(now=NOW)
    assert sig.reason is None and len(sig.q_values) == 3


def test_cli_backtest_and_signal_json_contracts(run_dir, tmp_path):
    res = run_cli("rl", "backtest", "--run", str(run_dir), "--json", "--out", str(tmp_path / "bt"), home=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    for strategy in ("policy", "buy_and_hold", "flat", "random", "sma"):
        for key in ("total_return", "sharpe", "sortino", "max_drawdown", "n_trades", "fees_paid"):
            assert isinstance(report[strategy][key], (int, float)), (strategy, key)
    assert report["flat"]["total_return"] == 0 and report["flat"]["sharpe"] == 0
    assert (tmp_path / "bt" / "equity.png").stat().st_size > 1000
    assert (tmp_path / "bt" / "trades.csv").read_text().startswith("timestamp,action")
    res = run_cli("rl", "backtest", "--run", str(run_dir), "--json", "--start", "2023-12-20", "--end", "2024-01-10",
                  home=tmp_path)
    assert json.loads(res.stdout)["period"]["bars"] == 21 * 24 + 1
    res = run_cli("rl", "signal", "--run", str(run_dir), "--json", "--now", "2024-01-29T21:00Z", home=tmp_path)
    sig = json.loads(res.stdout)
    assert sig["action"] in ("BUY", "SELL", "HOLD") and len(sig["q_values"]) == 3 and sig["reason"] is None
    assert isinstance(sig["agreement"], float) and isinstance(sig["q_margin"], float)
    assert isinstance(sig["features"], dict) and sig["time"] == "2024-01-29T19:00:00Z" and sig["age_s"] == 3600


@pytest.mark.parametrize("args, needle", [
    (["rl", "train", "--data", "/nonexistent.csv", "--out", "x"], "no dataset named or file at"),
    (["rl", "signal", "--run", "/nonexistent-run"], "is not a training run"),
    (["rl", "train", "--out", "x", "--algo", "sac"], "invalid setting 'algo'"),
    (["rl", "backtest", "--start", "2030-01-01"], "widen it"),
])
def test_cli_errors_are_one_line(tmp_path, args, needle):
    res = run_cli(*args, home=tmp_path)
    assert res.returncode == 1
    assert res.stderr.startswith("error: ") and needle in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_rollout_starts_from_both_kinds_of_wallet(run_dir):
    decisions = Policy.load(run_dir).rollout(episodes=8, steps=5, seed=3)
    firsts = decisions[::5]
    assert {d.eth > 0 for d in firsts} == {True, False}  # some episodes start in ETH, some in USDC
    flat_only = Policy.load(run_dir).rollout(episodes=8, steps=5, seed=3, random_position=False)
    assert all(d.eth == 0 for d in flat_only[::5])
