"""The dashboard's chat: the same `Agent` as `trader chat` (agent/turn/session.py), with the REPL's y/N replaced by a card.

A turn runs with no confirmation callback, so a proposal is only prepared (risk-checked and journalled
`proposed`), exactly as `trader ask` without `--yes`. The page shows it as a card; only a click on that card's
button (a token-carrying POST) executes it, through `ToolSession.call("execute_swap")`: the session's trade gate
(re-opened with the rules of the message that asked for the proposal, so a question asked since cannot turn it
into a trade and a question never trades), the proposal's risk verdict, and a `confirm` that answers yes for that
proposal id only. A typed "yes" does not execute: the card's button does.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel

from agent.turn.safety import TradeGate
from agent.turn.session import AgentConfig, build_agent


class ChatReply(BaseModel):
    answer: str
    model: str
    plan: dict[str, Any] | None = None
    tools: list[dict[str, Any]] = []
    proposal: dict[str, Any] | None = None
    safety: str | None = None
    seconds: float = 0.0


class ConfirmReply(BaseModel):
    ok: bool
    message: str
    receipt: dict[str, Any] | None = None


class WebChat:
    """One conversation per dashboard process (a local, single-user app); turns run one at a time."""

    def __init__(self, config: AgentConfig, chat=None, label: str = "custom"):
        self.config, self._chat, self._label = config, chat, label
        self._agent = None
        self.lock = threading.Lock()
        self.gates: dict[str, TradeGate] = {}  # proposal id -> the gate of the turn that proposed it

    @property
    def agent(self):
        if self._agent is None:  # the model loads on the first message, not at start
            notices: list[str] = []
            self._agent = build_agent(self.config, confirm=None, notify=notices.append, chat=self._chat,
                                      label=self._label)
        return self._agent

    def turn(self, message: str) -> ChatReply:
        from trader_core.errors import ConfigError

        text = (message or "").strip()
        if not text:
            raise ConfigError("empty message")
        if len(text) > 2000:
            raise ConfigError("message too long (2,000 characters at most)")
        with self.lock:
            agent = self.agent
            agent.tools.confirm = None  # a turn never executes: the card's button does
            result = agent.turn(text)
            for pid in agent.tools.gate.proposed:
                self.gates.setdefault(pid, agent.tools.gate)
        proposal = result.proposal
        if proposal and not (proposal.get("risk") or {}).get("ok"):
            proposal = {**proposal, "refused": True}
        return ChatReply(answer=result.answer, model=result.model, plan=result.plan,
                         tools=[c.public() for c in result.tool_calls], proposal=proposal, safety=result.safety,
                         seconds=round(result.seconds, 3))

    def confirm(self, proposal_id: str) -> ConfirmReply:
        """The card's confirm button: execute exactly this proposal, through the tools' safety layer."""
        with self.lock:
            tools = self.agent.tools
            gate = self.gates.get(proposal_id)
            if gate is None:
                return ConfirmReply(ok=False, message=f"no proposal {proposal_id!r} was made in this chat; "
                                    "nothing was sent")
            tools.begin_turn(gate)
            tools.confirm = lambda proposal: proposal.id == proposal_id
            try:
                call = tools.call("execute_swap", {"proposal_id": proposal_id})
            finally:
                tools.confirm = None
                tools.begin_turn(TradeGate())  # closed again until the next message
        if not call.ok:
            return ConfirmReply(ok=False, message=call.error or "not executed")
        r = call.result
        return ConfirmReply(ok=True, receipt=r, message=f"{r['side']} {r['amount_in']:g} → {r['amount_out']:.6g} "
                            f"confirmed in block {r.get('block')} (tx {r.get('tx_hash')})")

    def decline(self, proposal_id: str) -> ConfirmReply:
        """The card's decline button: the proposal is journalled `declined` and can never execute."""
        with self.lock:
            tools = self.agent.tools
            if proposal_id not in tools.proposals:
                return ConfirmReply(ok=False, message=f"no proposal {proposal_id!r} was made in this chat")
            if proposal_id in tools.executed:
                return ConfirmReply(ok=False, message=f"proposal {proposal_id} was already executed")
            from onchain.api import Journal

            tools.declined.add(proposal_id)
            journal = Journal()
            try:
                journal.decline(proposal_id, "declined by the user (dashboard)")
            finally:
                journal.close()
        return ConfirmReply(ok=True, message=f"proposal {proposal_id} declined: nothing was sent")
