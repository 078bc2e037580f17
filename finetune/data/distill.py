"""`trader finetune distill`: the trained policy's real decisions -> prompt/response records (JSONL).

The policy is rolled over historical states of the train split; each visited state becomes a question
carrying the policy's whole observation in words plus the seed's framing, and the answer is a rationale
from numbers the question shows, then the policy's own action. States whose questions read the same are
kept once (rollouts revisit bars). Classes are balanced by *sampling states* (dropping surplus states of
the common actions), never by changing a label.

`heldout_states` writes the evaluation set the same way from a split the model never trains on (the
policy's test split by default): class-balanced states of unseen market data.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from finetune import formats
from finetune.artifacts import config_matches
from trader_core.config import save_config
from trader_core.errors import DataError

OUTPUT = "distill.jsonl"
CONFIG = "distill_config.json"
HELDOUT = "heldout.jsonl"
HELDOUT_CONFIG = "heldout_config.json"


class DistillConfig(BaseModel):
    run: str = Field("default", description="Policy run directory, or 'default' for the bundled policy.")
    data: str = Field("chainlink-eth-1h", description="Dataset name or candle CSV path.")
    split: str = Field("train", description="Only the train split: held-out data stays unseen.")
    # the default policy trades rarely: 200 x 100 states hold ~80 of its rarest action
    episodes: int = Field(200, ge=1, description="Rollout episodes.")
    steps: int = Field(100, ge=1, description="Steps per episode.")
    seed: int = Field(0, description="Seeds the rollout and the class-balancing sample.")
    balance: bool = Field(True, description="Balance actions by sampling states (never relabelling).")
    max_ratio: float = Field(1.0, ge=1.0, description="Each action keeps at most max_ratio x the rarest one.")
    out: str = Field("runs/finetune/distill", description="Output directory.")


class DistillResult(BaseModel):
    path: str
    n: int
    counts: dict[str, int]
    raw_counts: dict[str, int]
    seconds: float


def decision_to_record(decision: Any) -> dict[str, Any]:
    """One policy decision (pydantic model or dict) -> a training record; the label is the policy's action."""
    state = decision.model_dump() if hasattr(decision, "model_dump") else dict(decision)
    state["action"] = str(state["action"]).upper()
    obs = state.get("observation") or {}
    return {
        "timestamp": int(state["timestamp"]),
        "prompt": formats.question(state),
        "response": formats.response(state),
        "action": state["action"],
        "agreement": float(state["agreement"]), "q_margin": float(state["q_margin"]),
        "position": position_of(obs),
        "source": "policy",
        "state": {k: state.get(k) for k in ("price", "volume", "volatility", "price_change", "eth", "usdc",
                                            "q_values", "observation")},
    }


def position_of(observation: dict[str, float]) -> str:
    """'flat', 'holding' or 'short': the wallet position the policy saw (the position baseline's key)."""
    pos = float(observation.get("position", 0.0))
    return "holding" if pos >= 0.5 else "short" if pos <= -0.5 else "flat"


def unique_prompts(records: list[dict]) -> list[dict]:
    """First record of every distinct question (rollouts from many starts revisit the same bars)."""
    seen: set[str] = set()
    out = []
    for rec in records:
        if rec["prompt"] not in seen:
            seen.add(rec["prompt"])
            out.append(rec)
    return out


def balance_by_sampling(records: list[dict], max_ratio: float, seed: int, limit: int | None = None) -> list[dict]:
    """Keep every state of the rarest action and a seeded random subset of the others (time order kept);
    `limit` caps every action (the rarest too)."""
    import numpy as np

    by_action: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_action.setdefault(rec["action"], []).append(i)
    if len(by_action) < 2 and limit is None:
        return list(records)
    cap = int(max(1, min(len(v) for v in by_action.values())) * max_ratio)
    cap = cap if limit is None else min(cap, limit)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for action in sorted(by_action):
        idx = by_action[action]
        keep.extend(idx if len(idx) <= cap else rng.choice(idx, size=cap, replace=False).tolist())
    return [records[i] for i in sorted(keep)]


def distill(config: DistillConfig) -> DistillResult:
    """Roll the policy, write `distill.jsonl` + the resolved config; deterministic given `seed`."""
    from rl.policy import Policy

    if config.split != "train":
        raise DataError(f"distill uses the train split only (got {config.split!r}); held-out data stays unseen")
    t0 = time.perf_counter()
    policy = Policy.load(config.run)
    decisions = policy.rollout(data=config.data, split=config.split, episodes=config.episodes,
                               steps=config.steps, seed=config.seed)
    if not decisions:
        raise DataError(f"the policy produced no decisions on {config.data!r}; use more steps or another dataset")
    records = unique_prompts(sorted((decision_to_record(d) for d in decisions), key=lambda r: r["timestamp"]))
    raw = Counter(r["action"] for r in records)
    if config.balance:
        records = balance_by_sampling(records, config.max_ratio, config.seed)
    out = Path(config.out)
    formats.write_jsonl(out / OUTPUT, records)
    save_config(config, out, CONFIG)
    counts = Counter(r["action"] for r in records)
    result = DistillResult(path=str(out / OUTPUT), n=len(records), counts=dict(sorted(counts.items())),
                           raw_counts=dict(sorted(raw.items())), seconds=round(time.perf_counter() - t0, 2))
    (out / "distill_stats.json").write_text(json.dumps(result.model_dump(), indent=2) + "\n")
    return result


def is_done(config: DistillConfig) -> bool:
    """Output exists and was produced by this exact config (used by `all` to skip)."""
    return (Path(config.out) / OUTPUT).exists() and config_matches(config.out, CONFIG, config)


class HeldoutConfig(BaseModel):
    """States for evaluation only, from a split the LoRA never sees."""

    run: str = Field("default", description="Policy run directory, or 'default' for the bundled policy.")
    data: str = Field("chainlink-eth-1h", description="Dataset name or candle CSV path.")
    split: Literal["val", "test"] = Field("test", description="The policy's held-out split to roll over.")
    episodes: int = Field(400, ge=1, description="Rollout episodes (the policy trades rarely).")
    steps: int = Field(100, ge=1)
    seed: int = 0
    per_action: int = Field(111, ge=1, description="At most this many states of each action (class-balanced).")
    out: str = Field("runs/finetune/heldout", description="Output directory (heldout.jsonl, chat format).")


def heldout_states(config: HeldoutConfig) -> DistillResult:
    """Class-balanced chat records of unseen states: each action keeps min(per_action, rarest) states."""
    from rl.policy import Policy

    t0 = time.perf_counter()
    decisions = Policy.load(config.run).rollout(data=config.data, split=config.split, episodes=config.episodes,
                                                steps=config.steps, seed=config.seed)
    records = unique_prompts(sorted((decision_to_record(d) for d in decisions), key=lambda r: r["timestamp"]))
    if not records:
        raise DataError(f"the policy produced no decisions on the {config.split} split of {config.data!r}")
    raw = Counter(r["action"] for r in records)
    kept = balance_by_sampling(records, 1.0, config.seed, limit=config.per_action)
    out = Path(config.out)
    formats.write_jsonl(out / HELDOUT, ({"messages": formats.chat_messages(r["prompt"], r["response"]),
                                         "meta": {"task": "trade", "position": r["position"],
                                                  "timestamp": r["timestamp"]}} for r in kept))
    save_config(config, out, HELDOUT_CONFIG)
    counts = Counter(r["action"] for r in kept)
    return DistillResult(path=str(out / HELDOUT), n=len(kept), counts=dict(sorted(counts.items())),
                         raw_counts=dict(sorted(raw.items())), seconds=round(time.perf_counter() - t0, 2))


def heldout_done(config: HeldoutConfig) -> bool:
    return (Path(config.out) / HELDOUT).exists() and config_matches(config.out, HELDOUT_CONFIG, config)
