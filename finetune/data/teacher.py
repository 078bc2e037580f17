"""`trader finetune teacher`: chain-of-draft answers from a larger model for the distilled prompts.

The teacher answers the same questions the policy was asked (stage-1 data in the seed's two-stage
recipe). A reply without a parsable `RECOMMENDATION:` line is counted as malformed and skipped: its
action is never guessed. The teacher's own action is its label; the policy's is kept beside it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from pydantic import BaseModel, Field

from finetune import formats
from finetune.llm_backends.runtime import chat_fn
from trader_core.config import save_config
from trader_core.errors import DataError

OUTPUT = "teacher.jsonl"
CONFIG = "teacher_config.json"
COD_SYSTEM = (
    "You are an expert crypto trader. Think step by step, but keep only a minimal draft of each step, "
    "five words at most. Then give the final line exactly as: RECOMMENDATION: BUY, SELL or HOLD."
)
_THINK = re.compile(r"<think>.*?(</think>|$)", re.S)


class TeacherConfig(BaseModel):
    llm: str = Field(..., description="openai:MODEL | ollama:MODEL | gguf:PATH")
    n: int = Field(100, ge=1, description="Number of prompts to ask.")
    prompts: str = Field(..., description="distill.jsonl whose prompts are asked.")
    out: str = Field("runs/finetune/teacher", description="Output directory.")
    max_tokens: int = Field(256, ge=16)
    temperature: float = Field(0.6, ge=0)
    seed: int = 0


class TeacherResult(BaseModel):
    path: str
    asked: int
    kept: int
    malformed: int
    agreement_with_policy: float | None
    seconds: float


def clean_reply(reply: str) -> str | None:
    """Drop hidden reasoning and anything after the last recommendation; None when there is none."""
    text = _THINK.sub("", reply or "").strip()
    matches = list(re.finditer(r"RECOMMENDATION[\s*]*[:\-]?[\s*]*(BUY|SELL|HOLD)\b\**", text, re.I))
    if not matches:
        return None
    last = matches[-1]
    body = text[: last.start()].rstrip()
    return f"{body}\nRECOMMENDATION: {last.group(1).upper()}".strip()


def run_teacher(config: TeacherConfig, ask=None) -> TeacherResult:
    """Ask the teacher `n` seeded-sampled prompts; write teacher.jsonl with the well-formed answers."""
    import numpy as np

    t0 = time.perf_counter()
    records = formats.read_jsonl(config.prompts)
    if not records:
        raise DataError(f"{config.prompts} holds no prompts; run `trader finetune distill` first")
    rng = np.random.default_rng(config.seed)
    picked = sorted(rng.choice(len(records), size=min(config.n, len(records)), replace=False).tolist())
    ask = ask or chat_fn(config.llm, max_tokens=config.max_tokens, temperature=config.temperature)
    kept, malformed, agree = [], 0, 0
    for i in picked:
        rec = records[i]
        reply = ask([{"role": "system", "content": COD_SYSTEM}, {"role": "user", "content": rec["prompt"]}])
        answer = clean_reply(reply)
        if answer is None:
            malformed += 1
            continue
        action = formats.parse_action(answer)
        agree += action == rec.get("action")
        kept.append({"timestamp": rec["timestamp"], "prompt": rec["prompt"], "response": answer, "action": action,
                     "source": f"teacher:{config.llm}", "policy_action": rec.get("action")})
    out = Path(config.out)
    formats.write_jsonl(out / OUTPUT, kept)
    save_config(config, out, CONFIG)
    result = TeacherResult(path=str(out / OUTPUT), asked=len(picked), kept=len(kept), malformed=malformed,
                           agreement_with_policy=round(agree / len(kept), 4) if kept else None,
                           seconds=round(time.perf_counter() - t0, 2))
    (out / "teacher_stats.json").write_text(json.dumps(result.model_dump(), indent=2) + "\n")
    return result
