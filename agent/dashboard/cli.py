"""The `trader dashboard` command: parsing only (FastAPI, uvicorn, web3 and the policy load inside it)."""

from __future__ import annotations

import typer


def dashboard(
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind (loopback by default; anything else "
                             "exposes an app that can trade)"),
    port: int = typer.Option(8050, "--port", help="port to listen on (0: any free port)"),
    rpc_url: str = typer.Option(None, "--rpc-url", help="chain RPC (default: the chain `trader chain up` started)"),
    policy: str = typer.Option("default", "--policy", help="'default' or a training run directory"),
    run: str = typer.Option(None, "--run", help="a `trader run --learn` folder for the online-learner panel"),
    search: str = typer.Option(None, "--search", help="a `trader rl search` folder (default: the bundled policy's)"),
    llm: str = typer.Option("auto", "--llm", help="the chat's model: auto | gguf:PATH | ollama:MODEL | "
                            "openai:MODEL | mlx:PATH"),
    base_url: str = typer.Option(None, "--base-url", help="base URL for --llm openai:MODEL"),
) -> None:
    """Local web dashboard: portfolio and equity, journal, live signal, online learner, recipe search, and a chat
    whose proposals execute only from their confirm button. Prints its address and a per-launch token."""
    from agent.dashboard.app import DashboardConfig, serve
    from trader_core.config import resolve_config

    serve(resolve_config(DashboardConfig, {"host": host, "port": port, "rpc_url": rpc_url, "policy": policy,
                                           "run": run, "search": search, "llm": llm, "base_url": base_url}))
