"""`trader finetune eval`: agreement of a model's parsed action with the policy's label on held-out states.

A reply without a parsable `RECOMMENDATION:` line counts as a parse failure (and as a disagreement):
never guessed. `--baseline` evaluates a second model (the base) on the same states, side by side.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, Field

from finetune import formats
from finetune.dataset import labels
from finetune.llm import chat_fn, split_spec

FAIL = "PARSE_FAIL"


class EvalConfig(BaseModel):
    model: str = Field(..., description="gguf:PATH | ollama:NAME | hf:DIR")
    data: str = Field(..., description="Chat JSONL written by prepare (test.jsonl).")
    limit: int | None = Field(None, ge=1, description="Evaluate the first N records only.")
    max_tokens: int = Field(96, ge=8, description="Reply budget; the rationale + recommendation fits in ~70.")


class EvalResult(BaseModel):
    model: str
    accuracy: float
    parse_failure_rate: float
    confusion: dict[str, dict[str, int]] = Field(description="label -> predicted -> count")
    n: int
    seconds: float
    examples: list[dict] = Field(default_factory=list, description="A few (label, reply) pairs to read.")


def evaluate(config: EvalConfig) -> EvalResult:
    t0 = time.perf_counter()
    split_spec(config.model)  # a bad spec fails before any data is read
    pairs = labels(Path(config.data))[: config.limit]
    ask = chat_fn(config.model, max_tokens=config.max_tokens)
    confusion = {a: {b: 0 for b in (*formats.ACTIONS, FAIL)} for a in formats.ACTIONS}
    right = fails = 0
    examples = []
    for messages, label in pairs:
        reply = ask(messages)
        pred = formats.parse_action(reply)
        fails += pred is None
        right += pred == label
        confusion[label][pred or FAIL] += 1
        if len(examples) < 3:
            examples.append({"label": label, "reply": reply})
    n = len(pairs)
    return EvalResult(model=config.model, accuracy=round(right / max(1, n), 4),
                      parse_failure_rate=round(fails / max(1, n), 4), confusion=confusion, n=n,
                      seconds=round(time.perf_counter() - t0, 2), examples=examples)
