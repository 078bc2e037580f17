"""`trader ask "QUESTION"`: one non-interactive turn (answer, tool calls, any proposal)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from agent.turn.planner import TurnResult
from agent.turn.session import AgentConfig, build_agent


def ask_once(question: str, config: AgentConfig | None = None, yes: bool = False,
             on_event: Callable[[str, Any], None] | None = None, chat=None, label: str = "custom") -> TurnResult:
    """Run one turn. With `yes=True` (the scripted form of "y") a proposal is executed only when the message is
    an explicit order and the proposal is exactly that order (agent.turn.safety)."""
    from trader_core.errors import ConfigError

    if not question or not question.strip():
        raise ConfigError('empty question; pass one, e.g. trader ask "what is the ETH price?"')
    agent = build_agent(config or AgentConfig(), confirm=(lambda proposal: True) if yes else None,
                        chat=chat, label=label, auto_confirm=yes)
    return agent.turn(question, on_event=on_event)


def print_events(kind: str, payload: Any) -> None:
    """Human output: the answer streams to stdout, tool activity goes to stderr."""
    if kind == "token":
        sys.stdout.write(payload)
        sys.stdout.flush()
    elif kind == "tool_start":
        print(f"→ {payload['name']} {payload['args']}", file=sys.stderr)
    elif kind == "tool_end":
        status = "ok" if payload.ok else f"error: {payload.error}"
        print(f"  {payload.name}: {status}", file=sys.stderr)
    elif kind == "notice":
        print(payload, file=sys.stderr)
