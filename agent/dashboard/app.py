"""`trader dashboard`: a local web app (FastAPI) over the library functions the CLI calls.

Panels (static/app.js draws them): portfolio and equity marked to market from the journal, the journal with
execution quality, the live signal with its ensemble vote and observation (the trader model's explanation on
demand), the online learner of a `trader run --learn` folder, recipe searches, and a chat with the agent whose
proposals execute only from a card's confirm button. Everything is served from this package (no CDN): the page,
its script and the vendored uPlot. See security.py for who may call what; nothing secret (private key, RPC URL)
is ever put into a response.
"""

from __future__ import annotations

import html
import os
import socket
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel, Field

from agent.dashboard.security import TOKEN_HEADER, Guard, is_loopback
from agent.turn.session import AgentConfig

STATIC = Path(__file__).resolve().parent / "static"


class DashboardConfig(BaseModel):
    host: str = Field("127.0.0.1", description="address to bind; anything but loopback exposes a trading app")
    port: int = Field(8050, ge=0, le=65535, description="port (0: any free port)")
    rpc_url: str | None = Field(None, description="chain RPC; default: the chain `trader chain up` started")
    policy: str = Field("default", description="'default' (bundled policy) or a training run directory")
    llm: str = Field("auto", description="the chat's model (same syntax as `trader chat --llm`)")
    base_url: str | None = Field(None, description="base URL for --llm openai:MODEL")
    trader_llm: str = Field("auto", description="the trader model asked for the signal's explanation")
    run: str | None = Field(None, description="a `trader run --learn` folder for the online-learner panel")
    search: str | None = Field(None, description="a `trader rl search` folder (default: the bundled policy's)")
    router: str = Field("auto", description="the agent's keyword router backing weak models (auto|model|hybrid)")


class ChatIn(BaseModel):
    message: str = Field(max_length=2000)


class ProposalIn(BaseModel):
    proposal_id: str = Field(min_length=1, max_length=64)


def create_app(cfg: DashboardConfig, chat=None, label: str = "custom", guard: Guard | None = None):
    """The ASGI app. `chat` (a LangChain chat model) replaces the chat's LLM, as in tests/agent."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    from agent.dashboard.insights import learner_view, search_view
    from agent.dashboard.live import LiveData
    from agent.dashboard.webchat import WebChat
    from trader_core.redact import scrub
    from trader_core.errors import TraderError

    guard = guard or Guard(cfg.host)
    live = LiveData(rpc_url=cfg.rpc_url, policy=cfg.policy, trader_llm=cfg.trader_llm)
    webchat = WebChat(AgentConfig(llm=cfg.llm, base_url=cfg.base_url, trader_llm=cfg.trader_llm, rpc_url=cfg.rpc_url,
                                  policy=cfg.policy, router=cfg.router), chat=chat, label=label)
    app = FastAPI(title="trader dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.guard, app.state.live, app.state.chat = guard, live, webchat

    @app.middleware("http")
    async def same_origin_and_token(request: Request, call_next):
        why = guard.refuse(request.method, request.headers.get("host"), request.headers.get("origin"),
                           request.headers.get(TOKEN_HEADER))
        if why:
            return JSONResponse({"error": why}, status_code=403)
        response = await call_next(request)
        # no framing (a confirm button must not be clickjacked), no third-party anything, nothing cached
        response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; "
                                                       "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(TraderError)
    async def trader_error(request: Request, exc: TraderError):
        return JSONResponse({"error": scrub(" ".join(str(exc).split()))}, status_code=400)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):
        return JSONResponse({"error": scrub(f"unexpected {type(exc).__name__}: {exc}")[:300]}, status_code=500)

    index = (STATIC / "index.html").read_text()

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return index.replace("{{TOKEN}}", html.escape(guard.token))

    @app.get("/api/state")
    def state():
        return live.state()

    @app.get("/api/signal")
    def signal():
        return live.signal()

    @app.get("/api/learner")
    def learner():
        return learner_view(cfg.run)

    @app.get("/api/search")
    def search():
        return search_view(cfg.search)

    @app.post("/api/explain")
    def explain():
        return live.explain()

    @app.post("/api/chat")
    def chat_turn(body: ChatIn):
        return webchat.turn(body.message)

    @app.post("/api/confirm")
    def confirm(body: ProposalIn):
        return webchat.confirm(body.proposal_id)

    @app.post("/api/decline")
    def decline(body: ProposalIn):
        return webchat.decline(body.proposal_id)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket bound before the server starts: port 0 picks a free port without a race."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from trader_core.errors import ConfigError

        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); check --host or pick another "
                          "--port") from None
    sock.listen(64)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


@contextmanager
def running(app, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` on a free port in a thread (tests, embedding); yields its URL and always stops it."""
    import uvicorn

    sock = bind(host, 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            thread.join(0.05)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def serve(cfg: DashboardConfig) -> None:
    """Run until Ctrl+C; prints the address and the launch token."""
    import uvicorn

    guard = Guard(cfg.host)
    app = create_app(cfg, guard=guard)
    sock = bind(cfg.host, cfg.port)
    url = url_of(sock)
    print(f"dashboard: {url}", flush=True)
    print(f"token (state-changing requests need it in {TOKEN_HEADER}; the page carries it): {guard.token}",
          flush=True)
    if not is_loopback(cfg.host):
        print(f"warning: bound to {cfg.host}, not loopback: anyone who can reach it and reads the page can trade; "
              "use only on a network you trust", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=os.environ.get("TRADER_DASHBOARD_LOG", "warning"),
                                           lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
