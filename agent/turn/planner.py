"""One conversational turn: a forced planning call, a safety review, deterministic tool runs, a checked answer.

Small models do not pick tools reliably on their own, but a forced, grammar-constrained call of `plan` is
reliable, so the model only *classifies* the request (intent + arguments); this module decides which tools run.
The trader model (trader-qwen-rl) was trained on that call: its own `plan` (finetune.plan_call) is the plan.
An untrained sub-1B model is backed by the keyword router instead. Capable models may use native multi-step
tool calling (`mode="native"`). Every plan says where it came from (`source`):
- "model": the model's plan, run as planned (its trade arguments are constrained to what the message writes:
  finetune.plan_args builds the grammar/schema of each forced call from the user's own numbers, assets, sides);
- "model+safety-veto": the model planned a trade the message does not allow (a question, negation, ...);
- "model+order-as-written": the model planned the trade, the user's own words fixed its side/amount/asset;
- "rules-override: ...": the model missed an explicit order (or a plain "yes") that the deterministic parser
  reads; the order is proposed, and runs only after the usual confirmation;
- "rules-fallback: ...": the model's reply did not parse (twice) or no model answered; the keyword router planned.
Whatever the source:
- the plan is reviewed against the user's own words (`agent.turn.safety`): a question, a negation, a hypothetical,
  quoted text or a rule change never trades, and a scripted yes runs only an explicit order, as written;
- a swap executes only through `ToolSession.execute_swap` (a proposal of this session, its risk verdict, the
  user's yes), which applies the same safety gate again;
- the answer is checked figure by figure against the tool results (`agent.turn.grounding`) and replaced by the
  tools' own facts when it misquotes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from agent.turn.facts import CAPABILITIES, key_facts, results_text, summary_answer
from agent.turn.grounding import check_answer
from finetune.llm_backends.chat_models import LLM
from finetune.plan_args import message_plan_schema
from agent.turn.router import keyword_plan
from agent.turn.safety import TRADE_INTENTS, MessageCheck, TradeGate, check_message, review_plan
from agent.turn.tools import ToolCall, ToolSession, validation_message
from onchain.models import Portfolio, SwapProposal
from trader_core.errors import LLMError

INTENTS = ("price", "quote", "signal", "portfolio", "propose", "execute", "trades", "explain", "chat")
Event = Callable[[str, Any], None]


class Plan(BaseModel):
    """What the user wants, as classified by the forced planning call."""

    intent: Literal[INTENTS] = Field(description="which tool family answers the message")
    side: Literal["buy", "sell"] | None = None
    amount: float | None = None
    asset: Literal["ETH", "USDC"] | None = None
    venue: str | None = None  # only ever taken from the user's own words (agent.turn.safety), never from the model
    proposal_id: str | None = None


# A small, flat schema: the grammar llama.cpp builds from it stays tiny and fast for a 135M model. Each forced
# call narrows it to the message (finetune.plan_args.message_plan_schema); this is the shape they all share.
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
    safety: str | None = None  # why a trade was stopped or not run without asking, if one was
    corrections: list[str] = []  # what the model's answer misquoted (it was replaced by the tools' facts)
    seconds: float = 0.0

    def public(self) -> dict:
        return {"answer": self.answer, "model": self.model, "plan": self.plan,
                "tool_calls": [c.public() for c in self.tool_calls], "proposal": self.proposal,
                "safety": self.safety}


def safe_plan(plan: Plan, check: MessageCheck, text: str) -> Plan:
    """A read-only plan for a message whose trade was stopped: what the rules read in it, else a quote of the
    trade it asks about (questions and hypotheticals), else plain chat."""
    rules = keyword_plan(text)
    if rules is not None and rules["intent"] not in TRADE_INTENTS:
        return Plan.model_validate(rules)
    if check.kinds <= {"question", "hypothetical"} and plan.side and plan.amount:
        return Plan(intent="quote", side=plan.side, amount=plan.amount, asset=plan.asset or "ETH")
    return Plan(intent="chat")


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
        pending = self.tools.pending()
        return f"pending proposal: {pending}" if pending else "no pending proposal"

    def plan(self, text: str, emit: Event | None = None) -> tuple[Plan, ToolCall | None, str]:
        """Forced `plan` call -> (plan, note, source). Arguments that fail validation come back as a note (a
        tool message), not an exception; if no model answers at all, the keyword router plans alone."""
        from langchain_core.messages import HumanMessage, SystemMessage

        from prompts import render_prompt

        if self.mode == "plan" and self.llm.current.plans:
            try:
                call, attempts = self.llm.plan_call(text, self.context())
            except LLMError as exc:  # that backend failed; the next one (already current) plans below
                if emit:
                    emit("notice", str(exc))
            else:
                if call is not None:
                    return Plan.model_validate(call.arguments()), None, "model" if attempts == 1 else "model (retried)"
                rules = keyword_plan(text)
                why = "rules-fallback: model reply unparsable twice"
                return (Plan.model_validate(rules), None, why) if rules else (Plan(intent="chat"), None, why)
        messages = [SystemMessage(render_prompt("planner", context=self.context())), HumanMessage(text)]
        try:
            # the schema of this message: trade arguments only as written (finetune.plan_args)
            raw = self.llm.forced_call("plan", "Route the user's message to one trading intent.",
                                       message_plan_schema(text), messages)
        except LLMError as exc:
            if emit:
                emit("notice", str(exc))
            rules = keyword_plan(text)
            why = "rules-fallback: no model answered"
            return (Plan.model_validate(rules), None, why) if rules else (Plan(intent="chat"), None, why)
        hybrid = self.router == "hybrid" or (self.router == "auto" and self.llm.current.weak)
        rules = keyword_plan(text) if hybrid else None
        if rules is not None:
            return Plan.model_validate(rules), None, "rules"
        try:
            return Plan.model_validate(_normalise(raw)), None, "model"
        except ValidationError as exc:
            note = ToolCall(name="plan", args=raw, error=validation_message("plan", exc))
            return Plan(intent="chat"), note, "model"

    def reviewed(self, plan: Plan, check: MessageCheck, text: str, source: str
                 ) -> tuple[tuple[Plan, bool, str | None], str]:
        """`review` plus the plan's source updated with what the review changed (see the module docstring)."""
        planned = plan
        if source.startswith("model") and plan.intent not in TRADE_INTENTS and check.may_trade:
            rules = keyword_plan(text)
            if rules is not None and rules["intent"] in TRADE_INTENTS:
                # the model missed what the deterministic parser reads as an explicit order (or a plain "yes")
                source = f"rules-override: model planned {plan.intent}, the message is an explicit " + \
                         ("order" if rules["intent"] == "propose" else "confirmation")
                plan = Plan.model_validate(rules)
        out = self.review(plan, check, text)
        final = out[0]
        if source.startswith("model") and planned.intent in TRADE_INTENTS:
            if final.intent not in TRADE_INTENTS:
                source = "model+safety-veto"
            elif (final.side, final.amount, final.asset) != (planned.side, planned.amount, planned.asset) and \
                    final.intent == "propose":
                source = "model+order-as-written"
        return out, source

    def review(self, plan: Plan, check: MessageCheck, text: str) -> tuple[Plan, bool, str | None]:
        """The safety review after planning -> (plan to run, may a scripted yes execute it, note for the user)."""
        if plan.intent in TRADE_INTENTS and check.order is not None:
            # the user's own words decide what is traded, not the planner's reading of them
            o = check.order
            plan = plan.model_copy(update={"intent": "propose", "side": o.side, "asset": o.asset, "venue": o.venue,
                                           "amount": None if o.everything else o.amount})
        verdict = review_plan(check, plan.intent, plan.side, plan.amount, plan.asset, plan.venue)
        if plan.intent in TRADE_INTENTS and not verdict.trade:
            return safe_plan(plan, check, text), False, verdict.reason
        return plan, verdict.auto_execute, verdict.reason if plan.intent in TRADE_INTENTS else None

    def run_plan(self, plan: Plan, text: str, emit: Event, auto_execute: bool = False,
                 check: MessageCheck | None = None) -> list[ToolCall]:
        """Run the tools a plan needs, in a fixed order; the model's free text never triggers anything."""
        check = check or check_message(text)
        calls: list[ToolCall] = []

        def run(name: str, args: dict | None = None) -> ToolCall:
            emit("tool_start", {"name": name, "args": args or {}})
            call = self.tools.call(name, args)
            emit("tool_end", call)
            calls.append(call)
            return call

        trade = {k: v for k, v in (("side", plan.side), ("amount", plan.amount), ("asset", plan.asset),
                                   ("venue", plan.venue)) if v is not None}
        everything = len(check.mentions) == 1 and check.mentions[0].everything and not check.mentions[0].ambiguous
        if plan.intent in ("quote", "propose") and everything and plan.side == "sell":
            # "sell all my ETH": the amount is the wallet's balance, read from the chain, not guessed.
            pf = run("get_portfolio")
            if isinstance(pf.value, Portfolio):
                trade.update(asset="ETH", amount=pf.value.eth + pf.value.weth)
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
            ready = isinstance(proposal.value, SwapProposal) and proposal.value.risk.ok
            if ready and self.tools.confirm is not None and (auto_execute or not self.tools.auto_confirm):
                run("execute_swap", {"proposal_id": proposal.value.id})
        elif plan.intent == "execute":
            pid = plan.proposal_id or self.tools.pending()
            run("execute_swap", {"proposal_id": pid} if pid else {})
        return calls

    # -- a turn ------------------------------------------------------------------------------------
    def turn(self, text: str, on_event: Event | None = None) -> TurnResult:
        emit = on_event or (lambda kind, payload: None)
        started = time.perf_counter()
        text = text.strip()
        check = check_message(text)
        self.tools.begin_turn(TradeGate.for_message(check))
        plan_dict, note = None, None
        if self.mode == "native":
            calls = self._native_tools(text, emit)
            refused = [c for c in calls if c.name in TRADE_INTENTS_TOOLS and not c.ok]
            note = check.reason() if refused and not check.may_trade else None
        else:
            plan, bad_plan, source = self.plan(text, emit)
            (plan, auto_execute, note), source = self.reviewed(plan, check, text, source)
            plan_dict = {**plan.model_dump(exclude_none=True), "source": source}
            emit("plan", plan_dict)
            calls = ([bad_plan] if bad_plan else []) + self.run_plan(plan, text, emit, auto_execute, check)
            if note and plan.intent == "propose" and (auto_execute or not self.tools.auto_confirm):
                note = None  # the proposal went to the user's confirmation as usual
        if note is None and not check.may_trade and check.about_trade:
            note = check.reason()  # the rules routed it away from a trade before any plan named one: say so
        answer, corrections = self.answer(text, calls, emit, note)
        proposal = next((c.result for c in reversed(calls) if c.name == "propose_swap" and c.ok), None)
        executed = any(c.name == "execute_swap" and c.ok for c in calls)
        self.history = (self.history + [(text, answer)])[-self.memory_turns:]
        return TurnResult(answer=answer, model=self.llm.label, plan=plan_dict, tool_calls=calls, proposal=proposal,
                          executed=executed, safety=note, corrections=corrections,
                          seconds=time.perf_counter() - started)

    def answer(self, text: str, calls: list[ToolCall], emit: Event, note: str | None = None
               ) -> tuple[str, list[str]]:
        """The model's answer from the tool results, checked figure by figure before anyone sees it.

        Returns (answer, corrections): a misquoting answer is replaced by the tools' facts and the
        corrections say what it got wrong. A trade that was stopped is always said first, in fixed words.
        """
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        from prompts import load_prompt, render_prompt

        weak = self.llm.current.weak
        tools_run = [c for c in calls if c.name != "plan"]
        lead = (note[0].upper() + note[1:].rstrip(".") + ". ") if note else ""
        facts = summary_answer(tools_run) if tools_run else ""
        if (tools_run and not any(c.ok for c in tools_run)) or (note and not tools_run):
            # Nothing to ground an answer on (tools failed, or a stopped trade with nothing to look up): say
            # what happened in fixed words rather than let a model improvise.
            answer = (lead + summary_answer(calls)) if tools_run else lead.strip()
            emit("token", answer)
            return answer, []
        messages: list = [SystemMessage(load_prompt("system"))]
        for user, reply in ([] if weak else self.history):  # a 135M model only gets confused by history
            messages += [HumanMessage(user), AIMessage(reply)]
        if calls or note:
            messages.append(HumanMessage(render_prompt("answer", question=text,
                                                       results=results_text(calls, details=not weak, safety=note))))
        else:  # plain chat: the message itself, no empty "facts" frame
            messages.append(HumanMessage(text))
        parts: list[str] = []
        try:
            stop = ["\n\n", "\nUser", "\nuser", "Question:", "Facts from"] + (["\n"] if weak else [])
            parts = list(self.llm.stream(messages, stop=stop))  # buffered: checked before it is shown
        except LLMError as exc:
            emit("notice", str(exc))
        answer = "".join(parts).strip()
        grounding = check_answer(answer, text, calls, (note,) if note else ())
        corrections = grounding.problems
        if not answer or not grounding.ok:
            answer = facts or (summary_answer(calls) if calls else CAPABILITIES)
        elif tools_run and not all(k in answer.replace(",", "") for k in key_facts(calls)):
            # complete but short of the headline figures: a weak model's words go, a capable one's keep the facts
            answer = facts if weak else f"{answer} (from the tools: {facts})"
        answer = lead + answer
        emit("token", answer)
        return answer, corrections

    def _native_tools(self, text: str, emit: Event, max_steps: int = 4) -> list[ToolCall]:
        """Native tool calling: the model calls tools itself; each result (or validation error) goes back
        to it as a ToolMessage. Proposals and executions still pass the session's safety gate and confirmation."""
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


TRADE_INTENTS_TOOLS = ("propose_swap", "execute_swap")


def _normalise(raw: dict) -> dict:
    out = {k: v for k, v in raw.items() if v not in (None, "") and k != "venue"}
    for key in ("intent", "side"):
        if isinstance(out.get(key), str):
            out[key] = out[key].strip().lower()
    if isinstance(out.get("asset"), str):
        out["asset"] = out["asset"].strip().upper()
    return out
