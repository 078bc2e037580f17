"""The shipped default policy is a DQN trained by its shipped recipe, reads one ETH candle feed over at most a week
of bars, and carries its fold report (JSON + PNG) against every baseline."""

import json

import numpy as np

from rl.training.config import TrainConfig
from rl.policy import DEFAULT_RUN, Policy, resolve_members
from rl.tuning.search_space import DQN_FAMILY, MAX_LOOKBACK


def test_default_policy_is_a_dqn():
    _, members = resolve_members("default")
    for m in members:
        cfg = TrainConfig.model_validate_json((m / "config.json").read_text())
        assert cfg.algo in DQN_FAMILY, f"the shipped default must be a DQN-family policy, {m.name} is {cfg.algo}"
    assert Policy.load("default").describe().split(",")[0] in ("DQN", "Double DQN", "QR-DQN")


def test_default_policy_seeds_are_the_searched_recipe():
    recipe = TrainConfig.model_validate_json((DEFAULT_RUN / "search" / "best.json").read_text())
    _, members = resolve_members("default")
    assert [m.name for m in members] == ["seed_0", "seed_1", "seed_2"]
    for m in members:
        cfg = TrainConfig.model_validate_json((m / "config.json").read_text())
        assert cfg.model_dump(exclude={"seed"}) == recipe.model_dump(exclude={"seed"})


def test_default_policy_reads_one_eth_feed_within_a_week(eth_candles):
    policy = Policy.load("default")
    assert policy.config.features.lookback <= MAX_LOOKBACK
    window = eth_candles.slice(len(eth_candles) - MAX_LOOKBACK - 1, len(eth_candles))  # ETH alone, one week + 1
    sig = policy.signal(candles=window, position=0.0, now=float(window.timestamps[-1] + 3600))
    assert sig.reason is None and np.isfinite(sig.q_values).all()


def test_default_policy_ships_its_fold_report():
    report = json.loads((DEFAULT_RUN / "search" / "report.json").read_text())
    assert report["trials"]["COMPLETE"] + report["trials"].get("PRUNED", 0) >= 10
    assert len(report["folds"]) == 6 and len(report["holdout"]) == 2
    for row in report["folds"] + report["holdout"]:
        assert {"policy", "buy_and_hold", "sma", "flat", "const_exposure", "vol_target", "judgement"} <= set(row)
        assert len(row["seeds"]) == 3 and 0 <= row["policy"]["position_predictability"] <= 1
    assert set(report["target"]) >= {"sharpe_ge_best_baseline_in_4_of_6", "deflated_sharpe_ge_0_95", "all"}
    assert 0 <= report["deflated_sharpe"]["deflated_sharpe"] <= 1
    assert (DEFAULT_RUN / "search" / "fold_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    backtest = json.loads((DEFAULT_RUN / "backtest" / "report.json").read_text())
    assert backtest["policy"]["members"] == 3 and backtest["warnings"] == []
