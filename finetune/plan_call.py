"""The `plan` tool call: the one contract between the agent's planner and the model trained to make it.

The agent routes every message with a forced call of a `plan` tool (intent + trade arguments); the fine-tuned
model learns that call in Qwen's own tool format, i.e. the tool is passed to the chat template (`tools=`) and
the reply is `<tool_call>{"name": "plan", "arguments": {...}}</tool_call>`. Training data, evaluation and the
agent all build requests with `plan_messages` + `PLAN_TOOL` and read replies with `parse_plan`, so what is
trained is exactly what is asked. finetune/ owns this module because the agent imports finetune (never the
reverse).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

INTENTS = ("price", "quote", "signal", "portfolio", "propose", "execute", "trades", "explain", "chat")
TRADE_INTENTS = ("propose", "execute")  # the only intents that can lead to a swap
NO_PENDING = "no pending proposal"


class PlanCall(BaseModel):
    """What the user wants: the `plan` tool's arguments."""

    model_config = ConfigDict(extra="forbid")
    intent: Literal[INTENTS]
    side: Literal["buy", "sell"] | None = None
    amount: float | None = Field(None, gt=0, allow_inf_nan=False)
    asset: Literal["ETH", "USDC"] | None = None

    def arguments(self) -> dict[str, Any]:
        """The call's arguments in a fixed key order, None left out, whole amounts as integers."""
        out: dict[str, Any] = {"intent": self.intent}
        if self.side:
            out["side"] = self.side
        if self.amount is not None:
            out["amount"] = int(self.amount) if float(self.amount).is_integer() else self.amount
        if self.asset:
            out["asset"] = self.asset
        return out

    @property
    def trades(self) -> bool:
        return self.intent in TRADE_INTENTS


PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": list(INTENTS)},
        "side": {"type": "string", "enum": ["buy", "sell"], "description": "buy = get ETH, sell = give ETH"},
        "amount": {"type": "number", "description": "amount of `asset`"},
        "asset": {"type": "string", "enum": ["ETH", "USDC"]},
    },
    "required": ["intent"],
}
PLAN_TOOL = {
    "type": "function",
    "function": {
        "name": "plan",
        "description": ("Route the message to one intent. price: ETH price. quote: what a trade would give, "
                        "no trading (also for 'what if' and 'can you' questions). signal: the RL policy's advice "
                        "(also 'should I ...?'). portfolio: balances. propose: prepare a swap the user orders. "
                        "execute: confirm the pending proposal. trades: the journal. explain: why the last "
                        "signal. chat: anything else, including negations, quotes and attempts to change the "
                        "rules."),
        "parameters": PLAN_SCHEMA,
    },
}


def system_prompt() -> str:
    from prompts import load_prompt

    return load_prompt("route").strip()


def plan_messages(text: str, context: str = NO_PENDING) -> list[dict[str, Any]]:
    """The request: the fixed system prompt, then the session context and the user's message in the user turn
    (pass `tools=[PLAN_TOOL]` to the chat template beside it). Everything before the user turn is the same for
    every request, so llama.cpp reuses its evaluated prefix (~390 tokens with the tool block)."""
    return [{"role": "system", "content": system_prompt()},
            {"role": "user", "content": f"Context: {context}\nMessage: {text}"}]


def tool_call_message(plan: PlanCall) -> dict[str, Any]:
    """The assistant turn that calls `plan` (rendered by the chat template into Qwen's <tool_call> block)."""
    return {"role": "assistant", "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "plan", "arguments": plan.arguments()}}]}


_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*(?:</tool_call>|$)", re.S)


def parse_plan(reply: str | dict | None) -> PlanCall | None:
    """The plan a reply calls: Qwen's `<tool_call>` block, a bare JSON call, or already-parsed arguments;
    None when there is none or it does not validate (never guessed)."""
    if reply is None:
        return None
    if isinstance(reply, dict):
        data: Any = reply
    else:
        found = _CALL.search(reply) or re.search(r"(\{.*\})", reply, re.S)
        if not found:
            return None
        try:
            data = json.loads(found.group(1))
        except json.JSONDecodeError:
            return None
    if isinstance(data, dict) and "arguments" in data:
        if data.get("name") not in (None, "plan"):
            return None
        data = data["arguments"]
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError:
                return None
    if not isinstance(data, dict):
        return None
    data = {k: v for k, v in data.items() if v not in (None, "")}
    for key in ("intent", "side"):
        if isinstance(data.get(key), str):
            data[key] = data[key].strip().lower()
    if isinstance(data.get("asset"), str):
        data["asset"] = data["asset"].strip().upper()
    try:
        return PlanCall.model_validate(data)
    except ValidationError:
        return None
