"""The MCP server: the tools of `agent.mcp.tools` on the official SDK's `MCPServer`, over stdio or streamable HTTP.

Each tool publishes the agent's own argument model as its input schema and its typed result (PriceQuote,
SwapProposal, ...) as its output schema. Every failure a client can cause (bad arguments, an unknown proposal,
a refused swap, a chain that is down) comes back as a tool error with one line of text, never a traceback.
On stdio, stdout is the protocol: the SDK points fd 1 at stderr while it serves, so stray prints from
llama.cpp, web3 or a library land on stderr; our own log lines go to stderr too.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import ToolAnnotations
from pydantic import ValidationError

from agent.mcp.config import McpConfig
from agent.mcp.tools import MCP_TOOLS, McpTool, McpTools
from trader_core.redact import scrub
from agent.turn.tools import validation_message
from trader_core.errors import TraderError

log = logging.getLogger("trader.mcp")
INSTRUCTIONS = (
    "Tools of an RL-guided trading agent on Uniswap (ETH/USDC). price, quote, signal, portfolio, trades and "
    "ask_trader_model only read. propose_swap prepares a swap and signs nothing; execute_swap sends a proposal's "
    "id before its deadline, and only when the server was started with --allow-execute. Confirm with the user "
    "before executing.")


def _one_line(text: str) -> str:
    return " ".join(scrub(text).split())


class TraderMcpServer(MCPServer):
    """`MCPServer` whose tool errors are one line: the agent's validation message instead of pydantic's
    multi-line report, the tool's own reason without the SDK's prefix."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context=None):
        args = dict(arguments or {})
        # models write "SELL" or "eth" (as ToolSession accepts); the published schema is lower/upper case
        if isinstance(args.get("side"), str):
            args["side"] = args["side"].lower()
        if isinstance(args.get("asset"), str):
            args["asset"] = args["asset"].upper()
        try:
            return await super().call_tool(name, args, context)
        except UnexpectedToolError:
            raise  # a bug in this package: the SDK logs the traceback on stderr and tells the client only the name
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                message = validation_message(name, cause)
            elif isinstance(cause, ToolError):
                message = str(cause)
            else:
                message = str(exc)  # unknown tool
            log.warning("%s refused: %s", name, _one_line(message))
            raise ToolError(_one_line(message)) from None


def _register(tool: McpTool, tools: McpTools) -> Tool:
    """An SDK `Tool` whose input schema is the agent's argument model and whose output is the typed result."""
    # the SDK validates arguments with `arg_model` (extra arguments are refused: the agent's models forbid them)
    arg_model = type(f"{tool.name}_arguments", (tool.args, ArgModelBase), {"__module__": __name__})

    def run(**kwargs: Any):
        try:
            return tools.call(tool, kwargs)
        except Exception as exc:  # refusals and errors alike: one line for the client
            text = str(exc) if isinstance(exc, TraderError) else f"{tool.name} failed: {type(exc).__name__}: {exc}"
            raise ToolError(_one_line(text)) from None

    annotations = ToolAnnotations(read_only_hint=tool.read_only, destructive_hint=tool.name == "execute_swap",
                                  open_world_hint=False)
    return Tool(fn=run, name=tool.name, description=tool.text, parameters=tool.args.model_json_schema(),
                fn_metadata=FuncMetadata(arg_model=arg_model, output_model=tool.result), is_async=False,
                annotations=annotations)


def build_server(config: McpConfig) -> TraderMcpServer:
    tools = McpTools(config)
    return TraderMcpServer("trader", title="rl-trader-agent", instructions=INSTRUCTIONS, version=_version(),
                           tools=[_register(t, tools) for t in MCP_TOOLS], log_level="WARNING")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rl-trader-agent")
    except PackageNotFoundError:
        return "0"


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("trader mcp: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def serve(config: McpConfig) -> None:
    """Run the server until the client disconnects (stdio) or the process is stopped (HTTP)."""
    import anyio

    _log_to_stderr()
    server = build_server(config)
    if config.transport == "stdio":
        log.info("serving on stdio; %s", config.describe())
        anyio.run(server.run_stdio_async)
    else:
        anyio.run(_serve_http, server, config)


async def _serve_http(server: TraderMcpServer, config: McpConfig) -> None:
    """Streamable HTTP on a socket bound here, so `--port 0` gets a free port and the URL printed is the real one."""
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        from trader_core.errors import ConfigError

        raise ConfigError(f"cannot listen on {config.host}:{config.port} ({exc.strerror}); pick another --port "
                          "(0 = any free port)") from None
    sock.listen(128)
    port = sock.getsockname()[1]
    host = f"[{config.host}]" if family == socket.AF_INET6 else config.host
    app = server.streamable_http_app(host=config.host)
    log.info("streamable HTTP on http://%s:%d/mcp; %s", host, port, config.describe())
    await uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on")).serve(sockets=[sock])
