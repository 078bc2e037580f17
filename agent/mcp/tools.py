"""The MCP server's tools: the agent's own tools (`agent.turn.tools.ToolSession`: the same argument models, the same
onchain/rl calls the CLI makes) under the names of the CLI commands, with typed results.

Trading over MCP has its own locks, in order: execution is off unless the server was started with
`--allow-execute`; only a proposal returned by this server's `propose_swap` may run, once, before its router
deadline; then the same guards as `trader swap` (risk verdict, chain id, local chain unless `--allow-live`,
simulation, min-out, the journal). Proposals live in this server process (ids); the journal row that each
proposal writes lets another process see it, and a row another process declined or expired is not executed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Optional

from pydantic import BaseModel, Field, create_model

from agent.market import PolicyView, TraderOpinion
from trader_core.redact import scrub
from agent.turn.safety import TradeGate
from agent.turn.tools import TOOL_SPECS, ToolSession
from onchain.execution.journal import COLUMNS
from onchain.models import Portfolio, PriceQuote, Quote, SwapProposal, SwapReceipt
from trader_core.errors import TraderError

from agent.mcp.config import McpConfig

log = logging.getLogger("trader.mcp")  # stderr (agent.mcp.server): stdout is the protocol on stdio


class ToolRefused(TraderError):
    """A tool call that cannot run as asked; its message is the one line the MCP client reads."""


class SignalVote(PolicyView):
    """The policy's signal with its ensemble vote: how many members voted and how many chose the action."""

    members: int = Field(description="models in the policy's ensemble (1 for a single model)")
    votes_for_action: int = Field(description="members whose own greedy choice is `action` (0 when it holds "
                                  "for safety)")


_SQL_TYPES = {"TEXT": str, "REAL": float, "INTEGER": int}
# One journal row, typed from the journal's own column list (so a new column shows up here by itself).
TradeRow = create_model("TradeRow", **{name: (Optional[_SQL_TYPES[sql.split()[0]]], None)  # noqa: UP045
                                       for name, sql in COLUMNS.items()})


class Trades(BaseModel):
    trades: list[TradeRow] = Field(description="journal rows, newest first: proposals, swaps, paper fills")


@dataclass(frozen=True)
class McpTool:
    name: str  # the MCP name: the `trader` command's
    agent_tool: str  # the agent's tool (agent.turn.tools.TOOL_SPECS) that does the work
    result: type[BaseModel]
    read_only: bool
    description: str | None = None  # None: the agent's own description

    @property
    def args(self) -> type[BaseModel]:
        return TOOL_SPECS[self.agent_tool][0]

    @property
    def text(self) -> str:
        return self.description or TOOL_SPECS[self.agent_tool][1]


MCP_TOOLS = [
    McpTool("price", "get_price", PriceQuote, True),
    McpTool("quote", "get_quote", Quote, True),
    McpTool("signal", "get_rl_signal", SignalVote, True,
            "The trained RL policy's signal on the live market: action, ensemble vote (members, votes for the "
            "action, agreement), Q-margin, Q-values, features, and how fresh the bars are."),
    McpTool("portfolio", "get_portfolio", Portfolio, True),
    McpTool("trades", "get_trades", Trades, True),
    McpTool("ask_trader_model", "ask_trader_model", TraderOpinion, True,
            "Ask the fine-tuned trader model what to do; without a question it is asked about the live market "
            "with real numbers. Loads an LLM on first use (slow)."),
    McpTool("propose_swap", "propose_swap", SwapProposal, False,
            "Prepare an exact-input swap: quote, min out, price impact, gas, risk check. Signs nothing. Returns "
            "the proposal `id` that execute_swap takes, and its `deadline` (unix time)."),
    McpTool("execute_swap", "execute_swap", SwapReceipt, False,
            "Execute a proposal returned by this server's propose_swap, once, before its deadline: simulate, "
            "sign, send, journal. Refused unless the server was started with --allow-execute."),
]


class McpTools:
    """One `ToolSession` shared by every client of this server; calls run one at a time (the session's chain
    connection, policy and proposals are not thread-safe, and the SDK runs sync tools on worker threads)."""

    def __init__(self, config: McpConfig):
        from onchain.execution.risk import load_risk_limits

        self.config = config
        risk = load_risk_limits(config.risk_config)  # a bad limit fails at start, not at the first proposal
        confirm = (lambda proposal: True) if config.allow_execute else None
        self.session = ToolSession(rpc_url=config.rpc_url, policy=config.policy, trader_llm=config.trader_llm,
                                   confirm=confirm, auto_confirm=config.allow_execute,
                                   notify=lambda line: log.info(scrub(line)), allow_live=config.allow_live,
                                   deadline_s=config.deadline_s, risk=risk)
        # No user message reaches this server: the MCP host puts each tool call to its user. Proposals sign
        # nothing; executing is the operator's opt-in (--allow-execute) and the locks above.
        self.session.begin_turn(TradeGate.for_autonomous_run())
        self._lock = threading.Lock()

    def call(self, tool: McpTool, args: dict[str, Any]) -> BaseModel:
        """Run `tool` on validated arguments; the typed result, or ToolRefused with one scrubbed line."""
        if tool.name == "execute_swap" and not self.config.allow_execute:
            raise ToolRefused("execution is off on this server: nothing was sent; restart it with `trader mcp "
                              "--allow-execute` to let execute_swap send proposals made by propose_swap")
        with self._lock:
            done = self.session.call(tool.agent_tool, args)
            if not done.ok:
                raise ToolRefused(" ".join(scrub(done.error).split()))
            value = done.value
            if tool.result is SignalVote:
                members = len(self.session.policy.models)
                value = SignalVote(**value.model_dump(), members=members,
                                   votes_for_action=round(value.agreement * members))
            elif tool.result is Trades:
                value = Trades(trades=value)
        return value
