"""`trader rl search` end to end on a tiny budget: two worker processes share one SQLite study, every trial
is saved with its config and fold metrics, and the chosen recipe comes out as a config `rl train` reads."""

import json
import os
import subprocess
import sys

import pytest

from rl.training.config import TrainConfig
from rl.tuning.search import SearchConfig, load_or_create_study, redact, storage_url

TRADER = [sys.executable, "-m", "agent.cli"]


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study_to_a_chosen_recipe(tmp_path):
    out = tmp_path / "search"
    env = {**os.environ, "TRADER_HOME": str(tmp_path / "home")}
    res = subprocess.run([*TRADER, "rl", "search", "--out", str(out), "--trials", "2", "--workers", "2",
                          "--timesteps", "400", "--folds", "2", "--train-bars", "600", "--final-seeds", "2",
                          "--algos", "dqn", "--json"], capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "locked" not in res.stderr
    report = json.loads(res.stdout)
    assert report["trials"] == {"COMPLETE": 2} and report["failed_workers"] == []
    assert report["storage"] == f"sqlite:///{(out / 'study.db').resolve()}"

    import optuna

    study = optuna.load_study(study_name="rl-recipe", storage=report["storage"])  # what optuna-dashboard opens
    # Shared, not side by side: two workers on two studies would have made 4 trials, and neither failed. Whether
    # their trials overlapped in time depends on how fast each process started on a busy machine (one worker
    # may finish both trials before the other has imported torch), so it is not asserted.
    assert len(study.trials) == 2
    for t in study.trials:
        saved = json.loads((out / "trials" / f"trial_{t.number:04d}.json").read_text())
        assert saved["state"] == "COMPLETE" and saved["value"] == t.value and saved["params"] == t.params
        TrainConfig.model_validate(saved["config"])
        assert {(r["fold"], r["dataset"]) for r in saved["folds"]} == {
            (f, d) for f in (0, 1) for d in ("chainlink-eth-1h", "chainlink-btc-1h")}
        for row in saved["folds"]:
            assert {"policy", "buy_and_hold", "sma", "flat", "const_exposure", "vol_target"} <= set(row)
            assert row["flat"]["sharpe"] == 0 and 0 <= row["policy"]["position_predictability"] <= 1
        assert saved["algo"] == "dqn" and saved["config"]["features"]["time_features"] in (False, True)

    best = TrainConfig.model_validate_json((out / "best.json").read_text())
    assert best.also_train_on == ["chainlink-btc-1h"] and best.checkpoint == "last"
    assert report["best"]["value"] == max(t.value for t in study.trials)
    assert len(report["folds"]) == 4 and all(set(r["seeds"]) == {"0", "1"} for r in report["folds"])
    assert [r["fold"] for r in report["holdout"]] == ["holdout", "holdout"]
    first_holdout = report["holdout"][0]["start"]
    assert all(r["end"] < first_holdout for r in report["folds"])  # the search never saw the final period
    dsr = report["deflated_sharpe"]
    assert dsr["n_trials"] == 2 and 0 <= dsr["deflated_sharpe"] <= 1
    assert json.loads((out / "report.json").read_text())["best"] == report["best"]
    assert report["best_other_algorithm"] is None and set(report["target"]) >= {"deflated_sharpe_ge_0_95", "all"}
    assert (out / "fold_report.png").read_bytes()[:4] == b"\x89PNG"


def test_storage_urls_journal_and_password_redaction(tmp_path):
    cfg = SearchConfig(out=str(tmp_path), storage=f"journal:{tmp_path / 'study.journal'}")
    study = load_or_create_study(cfg)
    assert study.study_name == "rl-recipe" and (tmp_path / "study.journal").stat().st_size > 0  # Optuna's journal
    assert storage_url(SearchConfig(out=str(tmp_path))) == f"sqlite:///{tmp_path.resolve() / 'study.db'}"
    assert redact("postgresql://trader:s3cret@db:5432/optuna") == "postgresql://trader:***@db:5432/optuna"
    assert "s3cret" not in redact("mysql+pymysql://u:s3cret@h/db")
