"""`trader finetune distill`: the trained policy's real decisions -> prompt/response records (JSONL).

The policy is rolled over historical states of the train split; each visited state becomes the seed's
question with that state's true numbers, and the answer is a rationale from the same numbers plus the
policy's own action and agreement. Classes are balanced by *sampling states* (dropping surplus states of
the common actions), never by changing a label.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from finetune import formats
from finetune.artifacts import config_matches
from trader_core.config import save_config
from trader_core.errors import DataError

OUTPUT = "distill.jsonl"
CONFIG = "distill_config.json"


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
    return {
        "timestamp": int(state["timestamp"]),
        "prompt": formats.question(state),
        "response": formats.response(state),
        "action": state["action"],
        "agreement": float(state["agreement"]), "q_margin": float(state["q_margin"]),
        "source": "policy",
        "state": {k: state.get(k) for k in ("price", "volume", "volatility", "price_change", "eth", "usdc",
                                            "q_values")},
    }


def balance_by_sampling(records: list[dict], max_ratio: float, seed: int) -> list[dict]:
    """Keep every state of the rarest action and a seeded random subset of the others (time order kept)."""
    import numpy as np

    by_action: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_action.setdefault(rec["action"], []).append(i)
    if len(by_action) < 2:
        return list(records)
    cap = int(max(1, min(len(v) for v in by_action.values())) * max_ratio)
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
    records = sorted((decision_to_record(d) for d in decisions), key=lambda r: r["timestamp"])
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
