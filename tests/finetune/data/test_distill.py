"""Distillation from a real trained DQN policy: labels are the policy's own decisions, deterministic."""

import json
from collections import Counter

import pytest

from finetune import formats
from finetune.data.distill import DistillConfig, distill, is_done

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def distilled(policy_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("distill")
    cfg = DistillConfig(run=policy_run, episodes=3, steps=40, seed=0, out=str(out))
    return cfg, distill(cfg)


def test_every_label_is_the_policys_real_decision(distilled, policy_run):
    from rl.policy import Policy

    cfg, res = distilled
    decisions = Policy.load(policy_run).rollout(data=cfg.data, split="train", episodes=3, steps=40, seed=0)
    truth = {}
    for d in decisions:
        truth.setdefault((d.timestamp, round(d.eth, 9), round(d.usdc, 6)), set()).add(d.action)
    records = formats.read_jsonl(res.path)
    assert 0 < len(records) <= len(decisions) and res.n == len(records)
    for rec in records:
        st = rec["state"]
        assert rec["action"] in truth[(rec["timestamp"], round(st["eth"], 9), round(st["usdc"], 6))]
        assert formats.parse_action(rec["response"]) == rec["action"]
        assert f"{st['eth']:.4f} ETH" in rec["prompt"] and f"{100 * st['volatility']:.2f}%" in rec["prompt"]
    raw = Counter(d.action for d in decisions)
    assert res.raw_counts == dict(sorted(raw.items()))
    if len(raw) > 1:  # balanced by sampling: the rarest class bounds every other
        assert max(res.counts.values()) == min(raw.values())


def test_distill_is_deterministic_and_saves_its_config(distilled, tmp_path):
    cfg, res = distilled
    again = distill(cfg.model_copy(update={"out": str(tmp_path)}))
    assert (tmp_path / "distill.jsonl").read_text() == open(res.path).read()
    assert again.counts == res.counts
    saved = json.loads((tmp_path / "distill_config.json").read_text())
    assert saved["episodes"] == 3 and saved["split"] == "train"
    assert is_done(cfg) and not is_done(cfg.model_copy(update={"seed": 1}))


def test_held_out_splits_are_refused(policy_run, tmp_path):
    from trader_core.errors import DataError

    with pytest.raises(DataError, match="train split only"):
        distill(DistillConfig(run=policy_run, split="test", out=str(tmp_path)))


@pytest.mark.llm
def test_teacher_counts_malformed_replies_and_never_guesses(distilled, tmp_path):
    """A real (small) model as the teacher: every reply is either kept with its own action or counted."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from finetune.base_models.sources import smollm2_gguf
    from finetune.data.teacher import TeacherConfig, run_teacher

    _, res = distilled
    replies = []
    cfg = TeacherConfig(llm=f"gguf:{smollm2_gguf()}", n=3, prompts=res.path, out=str(tmp_path), max_tokens=48,
                        temperature=0.0)
    from finetune.llm_backends.runtime import chat_fn

    ask = chat_fn(cfg.llm, max_tokens=cfg.max_tokens, temperature=0.0)
    out = run_teacher(cfg, ask=lambda msgs: replies.append(ask(msgs)) or replies[-1])
    assert out.asked == 3 == out.kept + out.malformed == len(replies)
    kept = formats.read_jsonl(out.path)
    assert len(kept) == out.kept
    assert out.malformed == sum(formats.parse_action(r) is None for r in replies)
    for rec in kept:
        assert rec["action"] == formats.parse_action(rec["response"]) and rec["source"].startswith("teacher:gguf:")
