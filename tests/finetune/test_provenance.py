"""The shipped adapter says what it was built from, and the teacher check notices a policy changed without
re-distilling."""

import json
import shutil

import pytest

from finetune.base_models.store import QWEN_Q4
from finetune.convert.trader_model import SHIPPED_ADAPTER, adapter_digest
from finetune.provenance import PROVENANCE, check_teacher, read_provenance, write_provenance
from rl.policy import DEFAULT_RUN, policy_digest
from trader_core.errors import ModelError


def test_the_shipped_record_matches_the_shipped_adapter_base_and_recipe():
    from pathlib import Path

    from finetune.artifacts import content_digest

    record = read_provenance(SHIPPED_ADAPTER)
    assert record.adapter_sha256 == adapter_digest(SHIPPED_ADAPTER)  # weights changed: write a new record
    assert record.base_sha256 == QWEN_Q4.sha256  # the embedded base the agent loads it on
    assert record.recipe_sha256 == content_digest(Path(__file__).resolve().parents[2] / record.recipe)
    assert record.data_recipe == json.loads((SHIPPED_ADAPTER / "eval_report.json").read_text())["command"]


@pytest.mark.xfail(strict=True, reason="the shipped adapter was taught by the DQN default of commit 94d4686; the "
                   "default policy has changed since and the adapter is not yet re-distilled (issue 27). strict: "
                   "this fails as soon as they match, so the marker goes with the re-distillation")
def test_the_default_policy_is_the_shipped_adapters_teacher():
    check = check_teacher(SHIPPED_ADAPTER)
    assert check.matches, check.message


@pytest.fixture
def taught(tmp_path):
    """A copy of the default policy, and an adapter folder whose record names that copy as its teacher."""
    policy = tmp_path / "policy"
    shutil.copytree(DEFAULT_RUN, policy)
    adapter = tmp_path / "adapter"
    shutil.copytree(SHIPPED_ADAPTER, adapter)
    (adapter / PROVENANCE).unlink()
    write_provenance(adapter, policy=policy, teacher_policy="a test copy of the default", base="q4",
                     base_sha256=QWEN_Q4.sha256, recipe=SHIPPED_ADAPTER / "adapter_config.json", data_recipe="test")
    return adapter, policy


def test_teacher_check_passes_for_the_teacher_wherever_it_lives_and_whatever_its_card_says(taught, tmp_path):
    adapter, policy = taught
    assert check_teacher(adapter, policy).matches
    moved = tmp_path / "moved"
    policy.rename(moved)
    (moved / "card.json").write_text("{}")  # reports and cards do not decide actions
    assert policy_digest(moved) == read_provenance(adapter).teacher_policy_sha256
    assert check_teacher(adapter, moved).matches


@pytest.mark.parametrize("swap", ["weights", "scaler", "recipe", "member_dropped"])
def test_teacher_check_fails_when_the_policy_is_swapped(taught, swap):
    adapter, policy = taught
    member = sorted(policy.glob("seed_*"))[-1]
    if swap == "weights":
        shutil.copy(sorted(policy.glob("seed_*"))[0] / "model.zip", member / "model.zip")
    elif swap == "scaler":
        meta = json.loads((member / "features.json").read_text())
        meta["_changed"] = True
        (member / "features.json").write_text(json.dumps(meta))
    elif swap == "recipe":
        cfg = json.loads((member / "config.json").read_text())
        cfg["gamma"] = 0.5
        (member / "config.json").write_text(json.dumps(cfg))
    else:
        shutil.rmtree(member)
    check = check_teacher(adapter, policy)
    assert not check.matches
    assert check.teacher_sha256[:12] in check.message and check.policy_sha256[:12] in check.message
    assert "re-distilled" in check.message


def test_a_missing_or_damaged_record_is_one_line(tmp_path):
    with pytest.raises(ModelError) as err:
        read_provenance(tmp_path)
    assert "missing" in str(err.value) and "--ship" in str(err.value)
    (tmp_path / PROVENANCE).write_text('{"adapter_sha256": 1}')
    with pytest.raises(ModelError) as err:
        read_provenance(tmp_path)
    assert "not a valid provenance record" in str(err.value) and "\n" not in str(err.value)
