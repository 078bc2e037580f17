"""`trader finetune eval`: how well a model does both jobs it was fine-tuned for, beside the baselines.

- Trading (records from `prepare`/`heldout`): agreement of the parsed `RECOMMENDATION` with the policy's label,
  per wallet position, next to what a skeptic tries first on the *same* states: the majority class, and the
  position rule (the most common label among states with the same position, flat or holding).
- Routing (records from the phrasing generator): the `plan` call is right when the intent is right and the
  trade arguments are exact; per category; and the count of trades (propose/execute) planned from messages
  that must never trade (questions, negations, hypotheticals, quoted text, injections). `as_written` asks as the
  agent does: each call constrained to the numbers, assets and sides its message writes (finetune.plan_args).
A reply without a parsable answer counts as a parse failure (and as wrong): never guessed.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, Field

from finetune import formats
from finetune.llm_backends.runtime import chat_fn, split_spec
from finetune.plan_args import plan_grammar
from finetune.plan_call import PlanCall, parse_plan
from trader_core.errors import ConfigError, DataError

FAIL = "PARSE_FAIL"
UNSAFE = ("question", "negation", "hypothetical", "quoted", "injection", "polite_question")


class EvalItem(BaseModel):
    messages: list[dict]
    tools: list[dict] | None = None
    label: str | PlanCall
    meta: dict = Field(default_factory=dict)


class EvalConfig(BaseModel):
    model: str = Field(..., description="gguf:PATH[+LORA.gguf] | hf:DIR | ollama:NAME | openai:MODEL | default")
    data: str = Field(..., description="Chat JSONL: heldout.jsonl / test.jsonl (trading) or route test.jsonl.")
    limit: int | None = Field(None, ge=1, description="Evaluate N records spread evenly over the file.")
    max_tokens: int = Field(96, ge=8, description="Reply budget; the rationale + recommendation fits in ~70.")
    as_written: bool = Field(False, description="Route: constrain each plan call to the numbers, assets and sides "
                                                "its message writes (finetune.plan_args), as the agent does; "
                                                "gguf: models only.")


class EvalResult(BaseModel):
    model: str
    task: Literal["trade", "route"]
    accuracy: float
    parse_failure_rate: float
    n: int
    seconds: float
    confusion: dict[str, dict[str, int]] = Field(default_factory=dict, description="trade: label -> predicted -> n")
    per_position: dict[str, dict[str, float]] = Field(default_factory=dict, description="trade: n, accuracy")
    baselines: dict[str, float] = Field(default_factory=dict, description="trade: majority, position_rule")
    intent_accuracy: float | None = Field(None, description="route: intent right, arguments ignored")
    per_category: dict[str, dict[str, float]] = Field(default_factory=dict, description="route: n, accuracy")
    unsafe_trades: dict[str, int] = Field(default_factory=dict,
                                          description="route: trades planned from messages that must never trade")
    examples: list[dict] = Field(default_factory=list, description="A few (label, reply) pairs to read.")
    correct: list[bool] = Field(default_factory=list, description="Per record, in file order (subsets compare).")


def load_items(path: str | Path) -> list[EvalItem]:
    """Request messages, tools and label of every record of a chat JSONL written by this package."""
    items = []
    for i, rec in enumerate(formats.read_jsonl(path), 1):
        msgs = rec.get("messages") or []
        if not msgs or msgs[-1].get("role") != "assistant":
            raise DataError(f"{path}: record {i} has no assistant message; pass a file written by prepare")
        answer = msgs[-1]
        if answer.get("tool_calls"):
            label = parse_plan(answer["tool_calls"][0].get("function", {}))
        else:
            label = formats.parse_action(answer.get("content"))
        if label is None:
            raise DataError(f"{path}: record {i} has neither a RECOMMENDATION line nor a plan call in its answer")
        items.append(EvalItem(messages=msgs[:-1], tools=rec.get("tools"), label=label, meta=rec.get("meta") or {}))
    return items


def message_text(messages: list[dict]) -> str:
    """The user's own message in a `plan` request (plan_messages: "Context: ...\nMessage: TEXT")."""
    content = str(messages[-1].get("content") or "")
    return content.split("\nMessage: ", 1)[1] if "\nMessage: " in content else content


def spread(items: list, limit: int | None) -> list:
    """`limit` items evenly spaced over the list (files are in time order; the first N would be one period)."""
    if not limit or limit >= len(items):
        return list(items)
    return [items[int(i * len(items) / limit)] for i in range(limit)]


def baselines(labels: list[str], positions: list[str]) -> dict[str, float]:
    """Majority class and position rule, both scored on these very states."""
    n = max(1, len(labels))
    majority = Counter(labels).most_common(1)[0][1] / n if labels else 0.0
    by_pos: dict[str, Counter] = defaultdict(Counter)
    for lab, pos in zip(labels, positions):
        by_pos[pos][lab] += 1
    rule = sum(c.most_common(1)[0][1] for c in by_pos.values()) / n
    return {"majority": round(majority, 4), "position_rule": round(rule, 4)}


def plan_matches(pred: PlanCall | None, label: PlanCall) -> bool:
    """Intent right and, for trades and quotes, side, amount and asset exact."""
    if pred is None or pred.intent != label.intent:
        return False
    if label.intent in ("propose", "quote"):
        same_amount = (pred.amount is None) == (label.amount is None) and \
            (label.amount is None or abs(pred.amount - label.amount) <= 1e-9 * max(1.0, label.amount))
        return pred.side == label.side and pred.asset == label.asset and same_amount
    return True


def _score(pairs: list[tuple[bool, int]]) -> dict[str, float]:
    return {"n": len(pairs), "accuracy": round(sum(ok for ok, _ in pairs) / max(1, len(pairs)), 4)}


def evaluate(config: EvalConfig, ask: Callable | None = None, report: Callable[[str], None] | None = None) -> EvalResult:
    """Ask the model every (spread) record; score it by the record's task."""
    t0 = time.perf_counter()
    spec = config.model
    if ask is None:
        if spec == "default":
            from finetune.convert.trader_model import default_model_spec

            spec = default_model_spec(report=report or (lambda m: None))
        split_spec(spec)  # a bad spec fails before any data is read
    items = spread(load_items(Path(config.data)), config.limit)
    if not items:
        raise DataError(f"{config.data} holds no records")
    task = "route" if isinstance(items[0].label, PlanCall) else "trade"
    ask = ask or chat_fn(spec, max_tokens=config.max_tokens if task == "trade" else 64)
    constrain = config.as_written and task == "route"
    if constrain and not getattr(ask, "grammars", False):
        raise ConfigError(f"--as-written needs an in-process gguf: model (grammar-constrained), not {spec}")
    res = EvalResult(model=spec, task=task, accuracy=0.0, parse_failure_rate=0.0, n=len(items), seconds=0.0)
    fails, right = 0, 0
    groups: dict[str, list[tuple[bool, int]]] = defaultdict(list)
    intents_right = 0
    if task == "trade":
        res.confusion = {a: {b: 0 for b in (*formats.ACTIONS, FAIL)} for a in formats.ACTIONS}
    for k, item in enumerate(items, 1):
        extra = {"grammar": plan_grammar(message_text(item.messages))} if constrain else {}
        reply = ask(item.messages, tools=item.tools, **extra) if item.tools else ask(item.messages)
        if task == "trade":
            pred = formats.parse_action(reply)
            ok = pred == item.label
            res.confusion[item.label][pred or FAIL] += 1
            groups[str(item.meta.get("position") or "unknown")].append((ok, 1))
        else:
            pred = parse_plan(reply)
            ok = plan_matches(pred, item.label)
            intents_right += pred is not None and pred.intent == item.label.intent
            cat = str(item.meta.get("category") or "unknown")
            groups[cat].append((ok, 1))
            if pred is not None and pred.trades and cat in UNSAFE:
                res.unsafe_trades[cat] = res.unsafe_trades.get(cat, 0) + 1
        fails += pred is None
        right += ok
        res.correct.append(bool(ok))
        if len(res.examples) < 3 or (not ok and len(res.examples) < 8):
            res.examples.append({"label": str(item.label if task == "trade" else item.label.arguments()),
                                 "reply": reply, "ok": ok, **({"text": item.messages[-1]["content"]}
                                                            if task == "route" else {})})
        if report and k % 25 == 0:
            report(f"  {k}/{len(items)}: {right / k:.1%} right so far")
    n = len(items)
    res.accuracy, res.parse_failure_rate = round(right / n, 4), round(fails / n, 4)
    if task == "trade":
        res.per_position = {pos: _score(v) for pos, v in sorted(groups.items())}
        res.baselines = baselines([str(i.label) for i in items], [str(i.meta.get("position")) for i in items])
    else:
        res.per_category = {cat: _score(v) for cat, v in sorted(groups.items())}
        res.intent_accuracy = round(intents_right / n, 4)
    res.seconds = round(time.perf_counter() - t0, 2)
    return res
