"""The typed settings of `trader mcp` (one config object per command)."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

LOOPBACK_NAMES = ("localhost",)


class McpConfig(BaseModel):
    """Settings of one `trader mcp` server."""

    model_config = ConfigDict(extra="forbid")

    transport: Literal["stdio", "http"] = Field("stdio", description="stdio (the client starts the server) or "
                                                "streamable HTTP on a loopback address")
    host: str = Field("127.0.0.1", description="--http: loopback address to listen on (the server has no auth)")
    port: int = Field(8765, ge=0, le=65535, description="--http: TCP port; 0 picks a free one (printed on stderr)")
    allow_execute: bool = Field(False, description="let execute_swap send a proposal made by this server, before "
                                "its deadline; off: every execution is refused")
    allow_live: bool = Field(False, description="allow signing on a chain that is not a local anvil node")
    deadline_s: int = Field(120, ge=1, le=86_400, description="router deadline of each proposal, seconds; an "
                            "older proposal is refused")
    risk_config: str | None = Field(None, description="JSON/YAML/TOML file with risk limits (default: env/defaults)")
    rpc_url: str | None = Field(None, description="chain RPC; default: $TRADER_RPC_URL, else `trader chain up`'s")
    policy: str = Field("default", description="'default' (bundled policy) or a training run directory")
    trader_llm: str = Field("auto", description="model behind ask_trader_model (auto | gguf:PATH | ollama:MODEL | "
                            "openai:MODEL | mlx:PATH)")

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, host: str) -> str:
        # anyone who reaches the port can call the tools (execute_swap included): no network exposure
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host.lower() in LOOPBACK_NAMES
        if not loopback:
            raise ValueError("must be a loopback address such as 127.0.0.1 (the server has no authentication)")
        return host

    def describe(self) -> str:
        execute = "execution ON (--allow-execute)" if self.allow_execute else "execution off"
        live = ", live chains allowed" if self.allow_live else ", local chain only"
        return f"{execute}{live}; proposals expire after {self.deadline_s} s"
