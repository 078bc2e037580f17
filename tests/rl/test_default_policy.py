"""The shipped default policy is what its shipped recipe trains, and carries its fold report."""

import json

from rl.config import TrainConfig
from rl.policy import DEFAULT_RUN, resolve_members


def test_default_policy_seeds_are_the_searched_recipe():
    recipe = TrainConfig.model_validate_json((DEFAULT_RUN / "search" / "best.json").read_text())
    _, members = resolve_members("default")
    assert [m.name for m in members] == ["seed_0", "seed_1", "seed_2"]
    for m in members:
        cfg = TrainConfig.model_validate_json((m / "config.json").read_text())
        assert cfg.model_dump(exclude={"seed"}) == recipe.model_dump(exclude={"seed"})


def test_default_policy_ships_its_fold_report():
    report = json.loads((DEFAULT_RUN / "search" / "report.json").read_text())
    assert report["trials"]["COMPLETE"] + report["trials"].get("PRUNED", 0) == 20
    assert len(report["folds"]) == 6 and len(report["holdout"]) == 2
    for row in report["folds"] + report["holdout"]:
        assert {"policy", "buy_and_hold", "sma", "flat"} <= set(row) and len(row["seeds"]) == 3
    assert 0 <= report["deflated_sharpe"]["deflated_sharpe"] <= 1
    backtest = json.loads((DEFAULT_RUN / "backtest" / "report.json").read_text())
    assert backtest["policy"]["members"] == 3 and backtest["warnings"] == []
