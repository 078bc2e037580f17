"""`trader mcp`: parsing only; the MCP SDK, web3 and the policy are imported when the server starts."""

from __future__ import annotations

import typer


def mcp(
    http: bool = typer.Option(False, "--http", help="serve streamable HTTP on --host/--port instead of stdio"),
    host: str = typer.Option("127.0.0.1", "--host", help="--http: loopback address to listen on"),
    port: int = typer.Option(8765, "--port", help="--http: TCP port (0 = any free port, printed on stderr)"),
    allow_execute: bool = typer.Option(False, "--allow-execute", help="let execute_swap send proposals made by "
                                       "propose_swap (before their deadline); off by default"),
    allow_live: bool = typer.Option(False, "--allow-live", help="allow signing on a chain that is not a local "
                                    "anvil node"),
    deadline: str = typer.Option("120s", "--deadline", help="router deadline of each proposal, e.g. 120s or 5m"),
    risk_config: str = typer.Option(None, "--risk-config", help="JSON/YAML/TOML file with risk limits"),
    rpc_url: str = typer.Option(None, "--rpc-url", help="chain RPC (default: $TRADER_RPC_URL, else the chain "
                                "`trader chain up` started)"),
    policy: str = typer.Option("default", "--policy", help="'default' or a training run directory"),
    trader_llm: str = typer.Option("auto", "--trader-llm", help="model behind ask_trader_model: auto | gguf:PATH | "
                                   "ollama:MODEL | openai:MODEL | mlx:PATH"),
) -> None:
    """The agent's tools as an MCP server (stdio, or streamable HTTP with --http); execution needs --allow-execute."""
    from agent.mcp.config import McpConfig
    from agent.mcp.server import serve
    from trader_core.config import resolve_config
    from trader_core.errors import ConfigError
    from trader_core.market_data import parse_interval

    try:
        deadline_s = parse_interval(deadline)
    except (ValueError, OverflowError):
        deadline_s = -1
    if not 1 <= deadline_s <= 86_400:
        raise ConfigError(f"--deadline must be 1s..24h (e.g. 120s or 5m), got {deadline!r}")
    # the opt-ins are flags only (never read from the environment): False here overrides any TRADER_MCP_* value
    cfg = resolve_config(McpConfig, dict(
        transport="http" if http else "stdio", host=host, port=port, allow_execute=allow_execute,
        allow_live=allow_live, deadline_s=deadline_s, risk_config=risk_config, rpc_url=rpc_url, policy=policy,
        trader_llm=trader_llm), env_prefix="TRADER_MCP_")
    serve(cfg)
