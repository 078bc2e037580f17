"""One conversational turn: a forced planning call, deterministic tool runs, then an answer from the results.

Small models do not pick tools reliably on their own, but a forced, grammar-constrained call of `plan` is
reliable, so the model only *classifies* the request (intent + arguments); this module decides which tools run.
Capable models may instead use native multi-step tool calling (`mode="native"`). Either way a swap executes
only through `ToolSession.execute_swap`, which needs a proposal from this session and the user's yes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from agent.llm import LLM
from agent.router import keyword_plan
from agent.tools import ToolCall, ToolSession, risk_ok, risk_reason, validation_message
from trader_core.errors import LLMError

INTENTS = ("price", "quote", "signal", "portfolio", "propose", "execute", "trades", "explain", "chat")
Event = Callable[[str, Any], None]


class Plan(BaseModel):
    """What the user wants, as classified by the forced planning call."""

    intent: Literal[INTENTS] = Field(description="which tool family answers the message")
    side: Literal["buy", "sell"] | None = None
    amount: float | None = None
    asset: Literal["ETH", "USDC"] | None = None
    proposal_id: str | None = None


# A small, flat schema: the grammar llama.cpp builds from it stays tiny and fast for a 135M model.
PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": list(INTENTS)},
        "side": {"type": "string", "enum": ["buy", "sell"]},
        "amount": {"type": "number"},
        "asset": {"type": "string", "enum": ["ETH", "USDC"]},
    },
    "required": ["intent"],
}


class TurnResult(BaseModel):
    """Everything one turn produced (the `trader ask --json` document is built from it)."""

    answer: str
    model: str
    plan: dict | None = None
    tool_calls: list[ToolCall] = []
    proposal: dict | None = None
    executed: bool = False
    seconds: float = 0.0

    def public(self) -> dict:
        return {"answer": self.answer, "model": self.model,
                "tool_calls": [c.public() for c in self.tool_calls], "proposal": self.proposal}


_ALL = re.compile(r"\b(all|everything|entire|whole)\b", re.IGNORECASE)


class Agent:
    """A conversation: the LLM (with fallbacks), the tool session and a short memory of past turns."""

    def __init__(self, llm: LLM, tools: ToolSession, mode: Literal["plan", "native"] = "plan",
                 router: Literal["auto", "model", "hybrid"] = "auto", memory_turns: int = 3):
        self.llm = llm
        self.tools = tools
        self.mode = mode
        self.router = router
        self.memory_turns = memory_turns
        self.history: list[tuple[str, str]] = []

    # -- planning ----------------------------------------------------------------------------------
    def context(self) -> str:
        pending = [pid for pid in self.tools.proposals if pid not in self.tools.executed]
        return f"pending proposal: {pending[-1]}" if pending else "no pending proposal"

    def plan(self, text: str, emit: Event | None = None) -> tuple[Plan, ToolCall | None, str]:
        """Forced `plan` call -> (plan, note, source). Arguments that fail validation come back as a note (a
        tool message), not an exception; if no model answers at all, the keyword router plans alone."""
        from langchain_core.messages import HumanMessage, SystemMessage

        from prompts import render_prompt

        messages = [SystemMessage(render_prompt("planner", context=self.context())), HumanMessage(text)]
        try:
            raw = self.llm.forced_call("plan", "Route the user's message to one trading intent.", PLAN_SCHEMA,
                                       messages)
        except LLMError as exc:
            if emit:
                emit("notice", str(exc))
            rules = keyword_plan(text)
            return (Plan.model_validate(rules), None, "rules") if rules else (Plan(intent="chat"), None, "none")
        hybrid = self.router == "hybrid" or (self.router == "auto" and self.llm.current.weak)
        rules = keyword_plan(text) if hybrid else None
        if rules is not None:
            return Plan.model_validate(rules), None, "rules"
        try:
            return Plan.model_validate(_normalise(raw)), None, "model"
        except ValidationError as exc:
            note = ToolCall(name="plan", args=raw, error=validation_message("plan", exc))
            return Plan(intent="chat"), note, "model"

    def run_plan(self, plan: Plan, text: str, emit: Event) -> list[ToolCall]:
        """Run the tools a plan needs, in a fixed order; the model's free text never triggers anything."""
        calls: list[ToolCall] = []

        def run(name: str, args: dict | None = None) -> ToolCall:
            emit("tool_start", {"name": name, "args": args or {}})
            call = self.tools.call(name, args)
            emit("tool_end", call)
            calls.append(call)
            return call

        trade = {k: v for k, v in (("side", plan.side), ("amount", plan.amount), ("asset", plan.asset))
                 if v is not None}
        if plan.intent in ("quote", "propose") and _ALL.search(text) and plan.side == "sell":
            # "sell all my ETH": the amount is the wallet's balance, read from the chain, not guessed.
            pf = run("get_portfolio")
            if pf.ok:
                trade.update(asset="ETH", amount=float(pf.result.get("eth", 0)) + float(pf.result.get("weth", 0)))
        if plan.intent == "price":
            run("get_price")
        elif plan.intent == "quote":
            run("get_quote", trade)
        elif plan.intent == "signal":
            run("get_rl_signal")
        elif plan.intent == "portfolio":
            run("get_portfolio")
        elif plan.intent == "trades":
            run("get_trades")
        elif plan.intent == "explain":
            run("get_rl_signal")
            run("ask_trader_model")
        elif plan.intent == "propose":
            proposal = run("propose_swap", trade)
            if proposal.ok and risk_ok(proposal.result) and self.tools.confirm is not None:
                run("execute_swap", {"proposal_id": str(proposal.result["id"])})
        elif plan.intent == "execute":
            pid = plan.proposal_id or self._pending()
            run("execute_swap", {"proposal_id": pid} if pid else {})
        return calls

    def _pending(self) -> str | None:
        pending = [pid for pid in self.tools.proposals if pid not in self.tools.executed]
        return pending[-1] if pending else None

    # -- a turn ------------------------------------------------------------------------------------
    def turn(self, text: str, on_event: Event | None = None) -> TurnResult:
        emit = on_event or (lambda kind, payload: None)
        started = time.perf_counter()
        text = text.strip()
        plan_dict = None
        if self.mode == "native":
            calls = self._native_tools(text, emit)
        else:
            plan, note, source = self.plan(text, emit)
            plan_dict = {**plan.model_dump(exclude_none=True), "source": source}
            emit("plan", plan_dict)
            calls = ([note] if note else []) + self.run_plan(plan, text, emit)
        answer = self.answer(text, calls, emit)
        proposal = next((c.result for c in reversed(calls) if c.name == "propose_swap" and c.ok), None)
        executed = any(c.name == "execute_swap" and c.ok for c in calls)
        self.history = (self.history + [(text, answer)])[-self.memory_turns:]
        return TurnResult(answer=answer, model=self.llm.label, plan=plan_dict, tool_calls=calls,
                          proposal=proposal, executed=executed, seconds=time.perf_counter() - started)

    def answer(self, text: str, calls: list[ToolCall], emit: Event) -> str:
        """Stream the model's answer written from the tool results; a fixed summary if no model works."""
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        from prompts import load_prompt, render_prompt

        weak = self.llm.current.weak
        messages: list = [SystemMessage(load_prompt("system"))]
        for user, reply in ([] if weak else self.history):  # a 135M model only gets confused by history
            messages += [HumanMessage(user), AIMessage(reply)]
        tools_run = [c for c in calls if c.name != "plan"]
        if calls:
            messages.append(HumanMessage(render_prompt("answer", question=text,
                                                       results=results_text(calls, details=not weak))))
        else:  # plain chat: the message itself, no empty "facts" frame
            messages.append(HumanMessage(text))
        if tools_run and not any(c.ok for c in tools_run):
            # Nothing to ground an answer on: say what failed rather than let a model improvise numbers.
            answer = summary_answer(calls)
            emit("token", answer)
            return answer
        parts: list[str] = []
        # A weak model's answer is checked before it is shown (it misquotes numbers); others stream live.
        live = not weak
        try:
            stop = ["\n\n", "\nUser", "\nuser", "Question:", "Facts from"] + (["\n"] if weak else [])
            for piece in self.llm.stream(messages, stop=stop):
                parts.append(piece)
                if live:
                    emit("token", piece)
        except LLMError as exc:
            emit("notice", str(exc))
        answer = "".join(parts).strip()
        facts = summary_answer(tools_run) if tools_run else ""
        if not answer or (weak and tools_run and not grounded(answer, calls)):
            answer = facts or answer or summary_answer(calls)  # the tools' facts, verbatim
            emit("token", answer)
        elif not live:
            emit("token", answer)
        elif tools_run and not grounded(answer, calls):
            extra = f" (from the tools: {facts})"  # a capable model misquoted: the facts go beside it
            answer += extra
            emit("token", extra)
        return answer

    def _native_tools(self, text: str, emit: Event, max_steps: int = 4) -> list[ToolCall]:
        """Native tool calling: the model calls tools itself; each result (or validation error) goes back
        to it as a ToolMessage. Execution still goes through the session's confirmation gate."""
        from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage

        from prompts import load_prompt

        messages: list = [SystemMessage(load_prompt("system")), HumanMessage(text)]
        calls: list[ToolCall] = []
        for _ in range(max_steps):
            try:
                ai = self.llm.current.chat.bind_tools(self.tools.langchain_tools()).invoke(messages)
            except Exception as exc:
                if not self.llm.fallback(exc):
                    break
                continue
            messages.append(ai)
            if not ai.tool_calls:
                break
            for tc in ai.tool_calls:
                emit("tool_start", {"name": tc["name"], "args": tc["args"]})
                call = self.tools.call(tc["name"], tc["args"])
                emit("tool_end", call)
                calls.append(call)
                messages.append(ToolMessage(call.content(), tool_call_id=tc["id"], name=tc["name"]))
        return calls


def _normalise(raw: dict) -> dict:
    out = {k: v for k, v in raw.items() if v not in (None, "")}
    for key in ("intent", "side"):
        if isinstance(out.get(key), str):
            out[key] = out[key].strip().lower()
    if isinstance(out.get("asset"), str):
        out["asset"] = out["asset"].strip().upper()
    return out


def results_text(calls: list[ToolCall], details: bool = True) -> str:
    """Facts as short sentences (small models paraphrase those well), then the raw JSON for capable models."""
    if not calls:
        return "(no tool was needed for this message)"
    lines = [f"- {summary_answer([c])}" for c in calls]
    if details:
        lines += [f"- {c.name}({json.dumps(c.args)}) returned: {c.content()[:600]}" for c in calls]
    if any(c.name == "propose_swap" and c.ok for c in calls) and not any(c.name == "execute_swap" for c in calls):
        lines.append("- note: the proposal was NOT executed; it needs the user's confirmation")
    return "\n".join(lines)


def key_numbers(calls: list[ToolCall]) -> list[str]:
    """What an answer must quote correctly: integer part of prices and amounts, the names of violated limits."""
    out = []
    for c in calls:
        if c.ok and c.name == "propose_swap" and not risk_ok(c.result):
            out += re.findall(r"\b(max_\w+|daily_loss_limit_usd)\b", risk_reason(c.result))
        if not c.ok:
            continue
        if c.name == "get_price":
            out.append(str(int(float(c.result["price"]))))
        elif c.name == "get_quote":
            out.append(str(int(float(c.result["amount_out"]))))
        elif c.name == "get_rl_signal":
            out.append(str(c.result["action"]))
        elif c.name == "get_portfolio":
            out.append(str(int(float(c.result["eth"]))))
        elif c.name == "propose_swap":
            out.append(str(c.result["id"]))
        elif c.name == "execute_swap":
            out.append(str(c.result.get("tx_hash") or "")[:10])
    return out


def grounded(answer: str, calls: list[ToolCall]) -> bool:
    """Does the answer quote every key figure of the tool results?"""
    try:
        keys = key_numbers(calls)
    except (KeyError, TypeError, ValueError):
        return False
    text = answer.replace(",", "")
    return all(k in text for k in keys)


def summary_answer(calls: list[ToolCall]) -> str:
    """A plain answer straight from the tool results, used when no language model answers."""
    if not calls:
        return "I can give prices, quotes, the RL signal, your portfolio, swap proposals and your trades."
    parts = []
    for c in calls:
        try:
            parts.append(_fact(c))
        except (KeyError, TypeError, ValueError, AttributeError):
            parts.append(f"{c.name}: {c.content()[:300]}")
    return " ".join(parts)


def _fact(c: ToolCall) -> str:
    if not c.ok:
        return f"{c.name} failed: {c.error}"
    if c.name == "get_price":
        return f"ETH is {float(c.result['price']):.2f} USDC on {c.result.get('venue', 'the pool')}."
    if c.name == "get_quote":
        r = c.result
        return (f"{r['amount_in']:g} {r['asset_in']} -> {r['amount_out']:.6g} {r['asset_out']} "
                f"(impact {r['price_impact_bps']:.1f} bps).")
    if c.name == "get_rl_signal":
        r = c.result
        where = f", wallet {100 * r['position']:.0f}% in ETH" if r.get("position") is not None else ""
        note = f"; safety switch: {r['reason']}" if r.get("reason") else ""
        return f"The RL policy says {r['action']} (agreement {r['agreement']:.0%}{where}{note})."
    if c.name == "get_portfolio":
        r = c.result
        return f"Wallet: {r['eth']:.4f} ETH, {r['weth']:.4f} WETH, {r['usdc']:.2f} USDC."
    if c.name == "propose_swap":
        r, q = c.result, c.result["quote"]
        verdict = "passes the risk check" if risk_ok(r) else f"is refused by the risk check: {risk_reason(r)}"
        return (f"Proposal {r['id']}: {q['side']} {q['amount_in']:g} {q['asset_in']} for at least "
                f"{r['min_amount_out']:.6g} {q['asset_out']}; it {verdict}.")
    if c.name == "execute_swap":
        return f"Swap {c.result.get('status')}: tx {c.result.get('tx_hash')}."
    if c.name == "get_trades":
        return f"{len(c.result)} trade(s) in the journal."
    return f"{c.name}: {c.content()[:300]}"
