"""The agent's tools: LangChain `StructuredTool`s with pydantic argument schemas over rl/ and onchain/.

`ToolSession` holds the state a conversation needs (chain connection, policy, candle feed, proposals made in
this session) and runs a tool by name with raw arguments: validation errors and TraderErrors come back as a
`ToolCall` with `error` set (the text the model sees as a tool message), never as an exception. Tools return
typed objects (`ToolCall.value`); JSON (`ToolCall.result`) is made only for the model and `--json`.

Trading has three locks, in order: the session's `TradeGate` (agent.turn.safety: the user's message must allow a
trade, and only an explicit order runs on a scripted yes), the proposal's risk verdict, and `confirm` (the
REPL's y/N, or `--yes`). Nothing a model writes can open them; a declined proposal is journalled `declined`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.market import (PolicyView, TraderModel, TraderOpinion, chain_feed, history_feed, market_summary,
                          needed_bars, policy_signal, trader_question, utc, wallet_signal)
from trader_core.redact import scrub
from agent.turn.safety import TradeGate
from trader_core.errors import ChainUnavailable, SwapRefused, TraderError

if TYPE_CHECKING:
    from onchain.models import SwapProposal

Side = Literal["buy", "sell"]
Asset = Literal["ETH", "USDC"]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GetPriceArgs(_Args):
    venue: str | None = Field(None, description="pool/venue name; omit for the default ETH/USDC pool")


class GetQuoteArgs(_Args):
    side: Side = Field(description="buy = get ETH for USDC, sell = give ETH for USDC")
    amount: float = Field(gt=0, description="amount of `asset` going in")
    asset: Asset = Field("ETH", description="token the amount is denominated in")
    venue: str | None = Field(None, description="pool/venue name; omit for the default")


class GetPortfolioArgs(_Args):
    address: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{40}$", description="wallet; omit for the agent's")


class GetRLSignalArgs(_Args):
    pass


class AskTraderModelArgs(_Args):
    question: str | None = Field(None, max_length=2000, description="omit to ask the standard question")


class ProposeSwapArgs(GetQuoteArgs):
    max_slippage_bps: int = Field(50, ge=1, le=1000, description="max slippage in basis points")


class ExecuteSwapArgs(_Args):
    proposal_id: str = Field(min_length=1, description="id of a proposal made in this session")


class GetTradesArgs(_Args):
    limit: int = Field(10, ge=1, le=200)


TOOL_SPECS: dict[str, tuple[type[BaseModel], str]] = {
    "get_price": (GetPriceArgs, "Current ETH price in USDC on the Uniswap pool."),
    "get_quote": (GetQuoteArgs, "Quote a swap without trading: amount out and price impact."),
    "get_portfolio": (GetPortfolioArgs, "ETH, WETH and USDC balances of the wallet."),
    "get_rl_signal": (GetRLSignalArgs, "The trained DQN policy's action, agreement, Q-margin, Q-values and features."),
    "ask_trader_model": (AskTraderModelArgs, "Ask the fine-tuned trader model what to do, with real numbers."),
    "propose_swap": (ProposeSwapArgs, "Prepare a swap (quote, min out, impact, gas, risk check). Does not trade."),
    "execute_swap": (ExecuteSwapArgs, "Execute a proposal made in this session, after the user confirms."),
    "get_trades": (GetTradesArgs, "Recent trades from the journal."),
}


class ToolCall(BaseModel):
    """One tool run: what was asked and what came back (a typed value and its JSON, or a one-line error)."""

    name: str
    args: dict[str, Any]
    result: Any = None  # JSON form of `value`: what the model reads and `--json` prints
    error: str | None = None
    value: Any = Field(None, exclude=True, repr=False)  # the typed result (PriceQuote, SwapProposal, ...)

    @property
    def ok(self) -> bool:
        return self.error is None

    def content(self) -> str:
        """The text the model reads (a tool message)."""
        return f"error: {self.error}" if self.error else json.dumps(self.result, default=str)

    def public(self) -> dict:
        return {"name": self.name, "args": self.args,
                "result": self.result if self.error is None else {"error": self.error}}


def to_json(value: Any) -> Any:
    """A tool's typed result as JSON data: pydantic models, lists/dicts of them, or plain JSON values.
    Non-finite floats become null. Anything else is a bug in the tool, said as such."""
    if isinstance(value, BaseModel):
        return to_json(value.model_dump(mode="json"))
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    raise TypeError(f"a tool returned {type(value).__name__}; tools return pydantic models or JSON data")


def validation_message(name: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg']} (got {err.get('input')!r})")
    return f"invalid arguments for {name}: " + "; ".join(parts)


class ToolSession:
    """Tool state for one conversation.

    `confirm(proposal) -> bool` is the last gate before a swap is sent; `auto_confirm` says it answers without
    a person (`--yes`, `trader run --execute`), which the `TradeGate` allows only for an explicit order.
    """

    def __init__(self, rpc_url: str | None = None, policy: str = "default", trader_llm: str = "auto",
                 confirm: Callable[["SwapProposal"], bool] | None = None, notify: Callable[[str], None] | None = None,
                 auto_confirm: bool = False, allow_live: bool = False, deadline_s: int = 120, risk=None):
        self.rpc_url = rpc_url
        # the CLI swap's guards, passed through to onchain (`trader mcp --allow-live --deadline --risk-config`)
        self.allow_live, self.deadline_s, self.risk = allow_live, deadline_s, risk
        self.policy_name = policy
        self.confirm = confirm
        self.auto_confirm = auto_confirm
        self.notify = notify
        self.gate = TradeGate()  # closed until a turn, a command or an autonomous run opens it
        self.proposals: dict[str, tuple[ProposeSwapArgs, "SwapProposal"]] = {}
        self.executed: set[str] = set()
        self.declined: set[str] = set()  # a declined proposal is final: its quote goes stale, a new one is made
        self.trader_model = TraderModel(trader_llm, notify)
        self._chain = None
        self._policy = None
        self._history = None
        self._feed = None

    # -- lazily opened resources -------------------------------------------------------------------
    @property
    def chain(self):
        if self._chain is None:
            from onchain.api import connect

            try:
                self._chain = connect(self.rpc_url)
            except TraderError as exc:  # onchain's message already says how to start the chain
                raise type(exc)(scrub(str(exc))) from None
        return self._chain

    @property
    def policy(self):
        if self._policy is None:
            from rl.policy import Policy

            self._policy = Policy.load(self.policy_name)
        return self._policy

    @property
    def history(self):
        """The policy's own dataset: the history live bars continue, and the data shown without a chain."""
        if self._history is None:
            self._history = history_feed(self.policy)
        return self._history

    def feed(self):
        """The live feed (the pool's swaps continuing the policy's history) when a chain answers, else the history.
        One feed per connection, so each read fetches only the blocks mined since the last."""
        if not self.chain_up():
            return self.history
        if self._feed is None or self._feed.chain is not self.chain:
            self._feed = chain_feed(self.chain, self.history, bars=needed_bars(self.policy.config))
        return self._feed

    def chain_up(self) -> bool:
        try:
            self.chain  # noqa: B018
            return True
        except TraderError:
            return False

    def pending(self) -> str | None:
        """The newest proposal of this session that was neither executed nor declined."""
        open_ = [pid for pid in self.proposals if pid not in self.executed and pid not in self.declined]
        return open_[-1] if open_ else None

    def begin_turn(self, gate: TradeGate) -> None:
        """Trading rules for what runs next: a user message's, a command's, or an autonomous run's."""
        self.gate = gate

    # -- dispatch ----------------------------------------------------------------------------------
    def call(self, name: str, args: dict | None = None) -> ToolCall:
        """Validate `args` against the tool's schema and run it; errors become `ToolCall.error`."""
        args = dict(args or {})
        if name not in TOOL_SPECS:
            return ToolCall(name=name, args=args, error=f"unknown tool {name!r}; tools: {', '.join(TOOL_SPECS)}")
        schema, _ = TOOL_SPECS[name]
        # Models write "SELL" or "eth": normalise case before validating.
        if isinstance(args.get("side"), str):
            args["side"] = args["side"].lower()
        if isinstance(args.get("asset"), str):
            args["asset"] = args["asset"].upper()
        try:
            parsed = schema.model_validate(args)
        except ValidationError as exc:
            return ToolCall(name=name, args=args, error=validation_message(name, exc))
        clean = parsed.model_dump(exclude_none=True)
        try:
            value = getattr(self, f"_{name}")(parsed)
            return ToolCall(name=name, args=clean, result=to_json(value), value=value)
        except TraderError as exc:
            if isinstance(exc, ChainUnavailable):
                self._chain = None  # reconnect next time: `trader chain up` may have restarted it elsewhere
            return ToolCall(name=name, args=clean, error=scrub(str(exc)))
        except Exception as exc:  # a bug in a tool must not kill the conversation
            return ToolCall(name=name, args=clean, error=scrub(f"{name} failed: {type(exc).__name__}: {exc}"))

    def langchain_tools(self) -> list:
        """The tools as LangChain `StructuredTool`s (for native tool calling and schema binding)."""
        from langchain_core.tools import StructuredTool

        tools = []
        for name, (schema, description) in TOOL_SPECS.items():
            def run(_name=name, **kwargs):
                return self.call(_name, kwargs).content()

            tools.append(StructuredTool.from_function(func=run, name=name, description=description,
                                                      args_schema=schema))
        return tools

    # -- the tools ---------------------------------------------------------------------------------
    def _get_price(self, a: GetPriceArgs):
        from onchain.api import get_price

        return get_price(self.chain, **({"venue": a.venue} if a.venue else {}))

    def _get_quote(self, a: GetQuoteArgs):
        from onchain.api import get_quote

        kw = {"venue": a.venue} if a.venue else {}
        return get_quote(self.chain, a.side, a.amount, a.asset, **kw)

    def _get_portfolio(self, a: GetPortfolioArgs):
        from onchain.api import get_portfolio

        return get_portfolio(self.chain, a.address)

    def wallet(self) -> tuple[float, float, str]:
        """(ETH incl. WETH, USDC, whose) of the chain wallet; (0, 0, "assumed flat") without a chain."""
        if not self.chain_up():
            return 0.0, 0.0, "no chain: position assumed flat"
        from onchain.api import get_portfolio

        pf = get_portfolio(self.chain)
        return pf.eth + pf.weth, pf.usdc, "chain wallet"

    def signal_on(self, snapshot) -> PolicyView:
        """The policy's view of `snapshot` holding the wallet as it is now (read once: the one story of a turn)."""
        eth, usdc, whose = self.wallet()
        if whose != "chain wallet":  # no wallet to read: the position is an assumption, not balances
            return policy_signal(self.policy, snapshot, 0.0, whose)
        return wallet_signal(self.policy, snapshot, eth, usdc, whose)

    def _get_rl_signal(self, a: GetRLSignalArgs) -> PolicyView:
        return self.signal_on(self.feed().read())

    def _ask_trader_model(self, a: AskTraderModelArgs) -> TraderOpinion:
        if a.question:
            return self.trader_model.ask(a.question)
        snapshot = self.feed().read()
        # the policy's own observation of the bar (as the model was trained on), with the real wallet
        view = self.signal_on(snapshot)
        if not view.observation and snapshot.live_bars:
            # live bars that do not cover the look-back yet (a fresh chain) give no observation: the policy's
            # latest full view is its history's last bar; the opinion names that bar (the wallet is today's,
            # valued at that bar's price, so the question's numbers agree with each other)
            snapshot = self.history.read()
            view = self.signal_on(snapshot)
        eth, usdc = (view.eth, view.usdc) if view.eth is not None else (0.0, 0.0)
        opinion = self.trader_model.ask(trader_question(market_summary(snapshot.candles), eth, usdc or 0.0, view))
        return opinion.model_copy(update={"bar": f"{view.data}, bar of {utc(view.bar_time)}", "view": view})

    def _propose_swap(self, a: ProposeSwapArgs) -> "SwapProposal":
        from onchain.api import propose_swap

        refused = self.gate.allow_proposal(a.side, a.amount, a.asset, a.venue)
        if refused:
            raise SwapRefused(refused)
        kw = {"venue": a.venue} if a.venue else {}
        proposal = propose_swap(self.chain, a.side, a.amount, a.asset, max_slippage_bps=a.max_slippage_bps,
                                deadline_s=self.deadline_s, risk=self.risk, allow_live=self.allow_live, **kw)
        self.proposals[proposal.id] = (a, proposal)
        self.gate.proposed.add(proposal.id)
        return proposal

    def _execute_swap(self, a: ExecuteSwapArgs):
        from onchain.api import execute_swap

        pid = a.proposal_id
        if pid not in self.proposals:
            known = ", ".join(self.proposals) or "none yet"
            raise SwapRefused(f"no proposal {pid!r} was made in this session (proposals: {known}); "
                              "ask for a proposal first")
        if pid in self.executed:
            raise SwapRefused(f"proposal {pid} was already executed; make a new proposal")
        if pid in self.declined:
            raise SwapRefused(f"proposal {pid} was declined; ask for a new proposal (with a fresh quote)")
        asked, proposal = self.proposals[pid]
        if not proposal.risk.ok:
            raise SwapRefused(f"proposal {pid} failed its risk check: {'; '.join(proposal.risk.reasons)}")
        # the router would revert it: refuse before anything is signed. The deadline is on the chain's clock (a replica
        # with baked history runs in its history's time), so it is judged on that clock, not the wall clock.
        if proposal.deadline <= self.chain.block_timestamp():
            self._journal_expired(pid)
            raise SwapRefused(f"proposal {pid} expired at {utc(proposal.deadline)} (its router deadline); "
                              "ask for a new proposal (with a fresh quote)")
        refused = self.gate.allow_execution(pid, asked.side, asked.amount, asked.asset, asked.venue,
                                            auto=self.auto_confirm)
        if refused:
            raise SwapRefused(f"proposal {pid} {refused}")
        if self.confirm is None:
            raise SwapRefused(f"proposal {pid} needs the user's confirmation (the REPL's y, or --yes); "
                              "nothing was sent")
        if not self.confirm(proposal):
            self.declined.add(pid)
            self._journal_status(pid, "declined", "declined by the user")
            raise SwapRefused(f"proposal {pid} was not confirmed by the user; nothing was sent")
        receipt = execute_swap(self.chain, proposal, allow_live=self.allow_live)
        self.executed.add(pid)
        return receipt

    @staticmethod
    def _journal_status(trade_id: str, status: str, reason: str) -> None:
        from onchain.api import Journal

        journal = Journal()
        try:
            journal.update(trade_id, status=status, reason=reason)
        finally:
            journal.close()

    @staticmethod
    def _journal_expired(trade_id: str) -> None:
        from onchain.api import Journal

        journal = Journal()
        try:
            journal.transition(trade_id, "proposed", status="expired", reason="never executed; its deadline passed")
        finally:
            journal.close()

    def _get_trades(self, a: GetTradesArgs) -> list:
        from onchain.api import Journal

        journal = Journal()
        try:
            return journal.list_trades(limit=a.limit)  # newest first
        finally:
            journal.close()
