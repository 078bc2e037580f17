"""Building an agent from CLI-level settings (shared by `trader chat`, `trader ask`, `trader run`, the demo)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from finetune.llm_backends.chat_models import LLM
from agent.turn.planner import Agent
from agent.turn.tools import ToolSession

if TYPE_CHECKING:
    from onchain.models import SwapProposal


class AgentConfig(BaseModel):
    """Settings of one agent session (saved beside `trader run` journals)."""

    llm: str = Field("auto", description="auto | gguf:PATH | ollama:MODEL | openai:MODEL | mlx:PATH")
    base_url: str | None = Field(None, description="base URL for --llm openai:MODEL (OpenRouter, vLLM, ...)")
    trader_llm: str = Field("auto", description="the trader model asked for opinions (same syntax as llm)")
    rpc_url: str | None = Field(None, description="chain RPC; default: the chain `trader chain up` started")
    policy: str = Field("default", description="'default' (bundled policy) or a training run directory")
    mode: Literal["plan", "native"] = Field("plan", description="forced planning call, or native tool calling")
    router: Literal["auto", "model", "hybrid"] = Field("auto", description="keyword router backing weak models")


def build_agent(config: AgentConfig, confirm: Callable[["SwapProposal"], bool] | None = None,
                notify: Callable[[str], None] | None = None, chat=None, label: str = "custom",
                auto_confirm: bool = False) -> Agent:
    """`confirm` answers each proposal (the REPL's y/N); `auto_confirm` says it answers without a person
    (`--yes`, `trader run --execute`), which the safety gate allows only for an explicit order."""
    notify = notify or (lambda line: print(line, file=sys.stderr))
    llm = LLM(config.llm, base_url=config.base_url, notify=notify, chat=chat, label=label)
    tools = ToolSession(rpc_url=config.rpc_url, policy=config.policy, trader_llm=config.trader_llm,
                        confirm=confirm, notify=notify, auto_confirm=auto_confirm)
    return Agent(llm, tools, mode=config.mode, router=config.router)
