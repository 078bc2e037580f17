"""What ships in the package (the default policy, its search and backtest reports, the trader model's adapter and
eval report) names files by the project's own relative paths, never by the folders of the machine that made it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["rl/default_policy", "finetune/adapters", "prompts"]
MACHINE_PATH = re.compile(r'"(/(?:work|tmp|home|root|Users|private|var/folders)/[^"]*)"')


def shipped_json() -> list[Path]:
    return sorted(p for d in SHIPPED for p in (ROOT / d).rglob("*.json"))


def test_there_are_shipped_reports_to_check():
    names = {p.name for p in shipped_json()}
    assert {"report.json", "card.json", "eval_report.json", "train_log.json"} <= names


@pytest.mark.parametrize("path", shipped_json(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_machine_path_in_a_shipped_report(path):
    found = MACHINE_PATH.findall(path.read_text())
    assert not found, f"{path.relative_to(ROOT)} names a folder of the machine that wrote it: {found[:3]}"


def test_portable_path_is_relative_to_the_project_or_the_working_folder(tmp_path, monkeypatch):
    from trader_core.paths import portable_path

    assert portable_path(ROOT / "rl" / "default_policy") == "rl/default_policy"
    monkeypatch.chdir(tmp_path)
    assert portable_path(tmp_path / "runs" / "x") == "runs/x"
    assert portable_path("/nowhere/else") == "/nowhere/else"
