"""The agent's tools: LangChain `StructuredTool`s with pydantic argument schemas over rl/ and onchain/.

`ToolSession` holds the state a conversation needs (chain connection, policy, proposals made in this
session) and runs a tool by name with raw arguments: validation errors and TraderErrors come back as a
`ToolCall` with `error` set (the text the model sees as a tool message), never as an exception.
Executing a swap needs a proposal made in this session AND a yes from `confirm` (the REPL's y/N, or
`--yes`): nothing the model writes can skip that step.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trader_core.errors import ChainUnavailable, SwapRefused, TraderError

Side = Literal["buy", "sell"]
Asset = Literal["ETH", "USDC"]


def _upper(v: Any) -> Any:
    return v.upper() if isinstance(v, str) else v


def _lower(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


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
    """One tool run: what was asked and what came back (result or a one-line error)."""

    name: str
    args: dict[str, Any]
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def content(self) -> str:
        """The text the model reads (a tool message)."""
        return f"error: {self.error}" if self.error else json.dumps(self.result, default=str)

    def public(self) -> dict:
        return {"name": self.name, "args": self.args,
                "result": self.result if self.error is None else {"error": self.error}}


def to_dict(obj: Any) -> Any:
    """pydantic models / dataclasses / dicts -> plain JSON-able data."""
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "model_dump"):
        return to_dict(obj.model_dump(mode="json"))
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return to_dict(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if hasattr(obj, "item"):
        return to_dict(obj.item())
    return str(obj)


def validation_message(name: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg']} (got {err.get('input')!r})")
    return f"invalid arguments for {name}: " + "; ".join(parts)


_SECRET = re.compile(r"(https?|wss?)://\S+|0x[0-9a-fA-F]{64}")


def scrub(text: str) -> str:
    """Remove URLs (RPC endpoints can carry API keys) and 32-byte hex strings (keys) from error text."""
    return _SECRET.sub("<redacted>", text)


class ToolSession:
    """Tool state for one conversation. `confirm(proposal) -> bool` gates every execution."""

    def __init__(self, rpc_url: str | None = None, policy: str = "default", trader_llm: str = "auto",
                 confirm: Callable[[dict], bool] | None = None, notify: Callable[[str], None] | None = None):
        self.rpc_url = rpc_url
        self.policy_name = policy
        self.trader_llm_spec = trader_llm
        self.confirm = confirm
        self.notify = notify
        self.proposals: dict[str, Any] = {}
        self.executed: set[str] = set()
        self.price_history: list[tuple[int, float]] = []
        self._chain = None
        self._policy = None
        self._trader_llm = None
        self._base_candles = None

    # -- lazily opened resources -------------------------------------------------------------------
    @property
    def chain(self):
        if self._chain is None:
            from onchain import connect

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

    def chain_up(self) -> bool:
        try:
            self.chain  # noqa: B018
            return True
        except TraderError:
            return False

    # -- dispatch ----------------------------------------------------------------------------------
    def call(self, name: str, args: dict | None = None) -> ToolCall:
        """Validate `args` against the tool's schema and run it; errors become `ToolCall.error`."""
        args = dict(args or {})
        if name not in TOOL_SPECS:
            return ToolCall(name=name, args=args, error=f"unknown tool {name!r}; tools: {', '.join(TOOL_SPECS)}")
        schema, _ = TOOL_SPECS[name]
        # Models write "SELL" or "eth": normalise case before validating.
        if "side" in args:
            args["side"] = _lower(args["side"])
        if "asset" in args:
            args["asset"] = _upper(args["asset"])
        try:
            parsed = schema.model_validate(args)
        except ValidationError as exc:
            return ToolCall(name=name, args=args, error=validation_message(name, exc))
        clean = parsed.model_dump(exclude_none=True)
        try:
            result = getattr(self, f"_{name}")(parsed)
        except TraderError as exc:
            if isinstance(exc, ChainUnavailable):
                self._chain = None  # reconnect next time: `trader chain up` may have restarted it elsewhere
            return ToolCall(name=name, args=clean, error=scrub(str(exc)))
        except Exception as exc:  # a bug in a tool must not kill the conversation
            return ToolCall(name=name, args=clean, error=scrub(f"{name} failed: {type(exc).__name__}: {exc}"))
        return ToolCall(name=name, args=clean, result=to_dict(result))

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
    def _get_price(self, a: GetPriceArgs) -> dict:
        from onchain import get_price

        out = to_dict(get_price(self.chain, **({"venue": a.venue} if a.venue else {})))
        import time

        self.price_history.append((int(time.time()), float(out["price"])))
        return out

    def _get_quote(self, a: GetQuoteArgs) -> Any:
        from onchain import get_quote

        kw = {"venue": a.venue} if a.venue else {}
        return get_quote(self.chain, a.side, a.amount, a.asset, **kw)

    def _get_portfolio(self, a: GetPortfolioArgs) -> Any:
        from onchain import get_portfolio

        return get_portfolio(self.chain, a.address)

    def _get_rl_signal(self, a: GetRLSignalArgs) -> dict:
        from agent.market import base_candles, extend_candles, position_fraction

        position, prices, swaps = 0.0, [], 0
        if self.chain_up():
            from onchain import get_portfolio, get_price, recent_swaps

            price = float(to_dict(get_price(self.chain))["price"])
            position = position_fraction(to_dict(get_portfolio(self.chain)), price)
            try:  # the pool's own recent swaps (replays, this wallet's trades) continue the bundled series
                prices = [e.price for e in recent_swaps(self.chain, venue="v2")][-48:]
            except TraderError:
                prices = []
            swaps = len(prices)
            prices.append(price)
        candles = extend_candles(base_candles(self), prices)
        sig = to_dict(self.policy.signal(candles=candles, position=position))
        sig["position"] = round(position, 4)
        sig["data"] = (f"bundled candles + {swaps} on-chain swap(s) + the pool price" if prices
                       else "bundled candles")
        return sig

    def _ask_trader_model(self, a: AskTraderModelArgs) -> dict:
        from agent.market import ask_trader_model

        return ask_trader_model(self, a.question)

    def _propose_swap(self, a: ProposeSwapArgs) -> Any:
        from onchain import propose_swap

        kw = {"venue": a.venue} if a.venue else {}
        proposal = propose_swap(self.chain, a.side, a.amount, a.asset, max_slippage_bps=a.max_slippage_bps, **kw)
        data = to_dict(proposal)
        self.proposals[str(data["id"])] = proposal
        return data

    def _execute_swap(self, a: ExecuteSwapArgs) -> Any:
        from onchain import execute_swap

        pid = a.proposal_id
        if pid not in self.proposals:
            known = ", ".join(self.proposals) or "none yet"
            raise SwapRefused(f"no proposal {pid!r} was made in this session (proposals: {known}); "
                              "ask for a proposal first")
        if pid in self.executed:
            raise SwapRefused(f"proposal {pid} was already executed; make a new proposal")
        proposal = self.proposals[pid]
        data = to_dict(proposal)
        if not risk_ok(data):
            raise SwapRefused(f"proposal {pid} failed its risk check: {risk_reason(data)}")
        if self.confirm is None or not self.confirm(data):
            raise SwapRefused(f"proposal {pid} was not confirmed by the user; nothing was sent")
        receipt = execute_swap(self.chain, proposal)
        self.executed.add(pid)
        return receipt

    def _get_trades(self, a: GetTradesArgs) -> list:
        from onchain import Journal

        journal = Journal()
        try:
            return to_dict(journal.list_trades(limit=a.limit))  # newest first
        finally:
            journal.close()


def _risk(data: dict) -> Any:
    for key in ("risk", "verdict", "risk_verdict", "risk_check"):
        if key in data:
            return data[key]
    return None


def risk_ok(data: dict) -> bool:
    """A proposal's risk verdict, whatever its shape (bool, {"ok": ...}, {"approved": ...}, "ok"/"refused")."""
    verdict = _risk(data)
    if verdict is None:
        return True
    if isinstance(verdict, bool):
        return verdict
    if isinstance(verdict, dict):
        for key in ("ok", "approved", "passed", "allowed"):
            if key in verdict:
                return bool(verdict[key])
        return not verdict.get("violations")
    return str(verdict).lower() in ("ok", "pass", "passed", "approved", "allow", "allowed")


def risk_reason(data: dict) -> str:
    verdict = _risk(data)
    if isinstance(verdict, dict):
        for key in ("reason", "reasons", "violations", "message"):
            if verdict.get(key):
                v = verdict[key]
                return "; ".join(map(str, v)) if isinstance(v, list) else str(v)
    return str(verdict)
