"""`trader mcp` driven by the MCP SDK's own client (stdio, and streamable HTTP once) against the real replica chain:
schemas, reads that match the CLI, proposals, execution refused without the opt-in and done with it (journal row
and balances), expired and unknown proposals refused, one-line errors, and a stdout that carries only JSON-RPC."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the MCP SDK is not installed (pip install 'rl-trader-agent[agent]')")

from tests.agent.conftest import journal_rows  # noqa: E402
from tests.conftest import run_trader  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
TRADER = Path(sys.executable).parent / "trader"
SECRET = "k3y0f4h0st3drpc"
TOOLS = ["price", "quote", "signal", "portfolio", "trades", "ask_trader_model", "propose_swap", "execute_swap"]


def server_env(home) -> dict[str, str]:
    """What the client passes to the server it starts (the SDK's client hands over only PATH, HOME and such)."""
    return {"TRADER_HOME": str(home), "PYTHONPATH": str(ROOT), "TRADER_GGUF": "none",
            "OLLAMA_HOST": os.environ.get("OLLAMA_HOST", "http://127.0.0.1:9")}


class Client:
    """A sync face on an SDK `ClientSession` running in an anyio blocking portal (one server per fixture)."""

    def __init__(self, portal, session, stream_errors: list):
        self.portal, self.session, self.stream_errors = portal, session, stream_errors

    def tools(self) -> dict:
        return {t.name: t for t in self.portal.call(self.session.list_tools).tools}

    def call(self, name: str, args: dict | None = None):
        return self.portal.call(self.session.call_tool, name, args or {})

    def ok(self, name: str, args: dict | None = None) -> dict:
        result = self.call(name, args)
        assert not result.is_error, result.content[0].text
        assert json.loads(result.content[0].text) == result.structured_content  # text and structure agree
        return result.structured_content

    def error(self, name: str, args: dict | None = None) -> str:
        result = self.call(name, args)
        assert result.is_error, result.structured_content
        text = result.content[0].text
        assert "\n" not in text and "Traceback" not in text  # one line, never a traceback
        return text


@asynccontextmanager
async def _stdio_session(home, flags, errors: list, stderr):
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    async def on_message(message):
        if isinstance(message, Exception):  # a stdout line that is not JSON-RPC
            errors.append(message)

    params = StdioServerParameters(command=sys.executable, args=["-m", "agent.cli", "mcp", *flags],
                                   env=server_env(home), cwd=str(ROOT))
    async with stdio_client(params, errlog=stderr) as (read, write):
        async with ClientSession(read, write, message_handler=on_message) as session:
            await session.initialize()
            yield session


@contextmanager
def stdio_client_for(home, tmp_path, *flags):
    from anyio.from_thread import start_blocking_portal

    errors: list = []
    with open(tmp_path / "server.stderr", "w+") as stderr, start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(_stdio_session(home, flags, errors, stderr)) as session:
            yield Client(portal, session, errors)
        assert errors == []


@pytest.fixture(scope="module")
def mcp_home(chain_home):
    return chain_home


@pytest.fixture(scope="module")
def reader(mcp_home, tmp_path_factory):
    """A server started the way a client config starts it: `trader mcp`, no opt-in."""
    with stdio_client_for(mcp_home, tmp_path_factory.mktemp("mcp_reader")) as client:
        yield client


@pytest.fixture(scope="module")
def executor(mcp_home, tmp_path_factory):
    with stdio_client_for(mcp_home, tmp_path_factory.mktemp("mcp_exec"), "--allow-execute") as client:
        yield client


def _trader_json(home, *args) -> dict:
    proc = run_trader([*args, "--json"], env={**os.environ, "TRADER_HOME": str(home), "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _row(trade_id: str) -> dict:
    return next(r for r in journal_rows() if r["id"] == trade_id)


def _chain_now(home) -> int:
    """The chain's clock (a replica with baked history runs in its history's time, not the wall clock's)."""
    from onchain.node.chain import read_state, Chain

    mp = pytest.MonkeyPatch()
    mp.setenv("TRADER_HOME", str(home))
    try:
        return Chain(read_state().rpc_url).block_timestamp()
    finally:
        mp.undo()


@pytest.mark.chain
def test_tools_are_listed_with_the_agents_typed_schemas(reader):
    from agent.mcp.tools import MCP_TOOLS

    tools = reader.tools()
    assert sorted(tools) == sorted(TOOLS)
    for spec in MCP_TOOLS:
        tool = tools[spec.name]
        assert tool.input_schema == spec.args.model_json_schema()  # the agent's own argument model
        assert tool.output_schema["type"] == "object" and tool.output_schema["properties"]
        assert tool.annotations.read_only_hint is spec.read_only and tool.description
    assert tools["quote"].input_schema["properties"]["side"]["enum"] == ["buy", "sell"]
    assert tools["quote"].input_schema["additionalProperties"] is False
    assert "id" in tools["propose_swap"].output_schema["properties"]
    assert tools["execute_swap"].annotations.destructive_hint is True


@pytest.mark.chain
def test_price_matches_trader_price_and_quote_matches_the_library(reader, mcp_home):
    from onchain.api import connect, get_quote

    cli = _trader_json(mcp_home, "price")
    price = reader.ok("price")
    assert price["price"] == pytest.approx(cli["price"], rel=1e-12) and price["venue"] == cli["venue"]
    v3 = reader.ok("price", {"venue": "v3"})
    assert v3["venue"] == "v3" and v3["price"] > 0
    quote = reader.ok("quote", {"side": "SELL", "amount": 0.1, "asset": "eth"})  # a model's casing is accepted
    direct = get_quote(connect(), "sell", 0.1, "ETH")
    assert quote["amount_out"] == pytest.approx(direct.amount_out) and quote["asset_out"] == "USDC"
    assert 0 < quote["price"] < price["price"]  # the fee and the impact, not the mid price


@pytest.mark.chain
def test_signal_portfolio_and_trades(reader):
    signal = reader.ok("signal")
    assert signal["action"] in ("BUY", "SELL", "HOLD") and signal["members"] >= 1
    assert 0 <= signal["votes_for_action"] <= signal["members"]
    assert signal["votes_for_action"] == round(signal["agreement"] * signal["members"])
    assert signal["wallet"] == "chain wallet" and signal["price"] > 0
    pf = reader.ok("portfolio")
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", pf["address"]) and pf["eth"] > 0
    trades = reader.ok("trades", {"limit": 3})["trades"]
    assert len(trades) <= 3 and all("status" in t for t in trades)


@pytest.mark.chain
def test_bad_input_is_a_one_line_tool_error(reader):
    assert "amount" in reader.error("quote", {"side": "sell", "amount": -1})
    assert "side" in reader.error("quote", {"side": "hold", "amount": 1})
    assert "slipage" in reader.error("propose_swap", {"side": "sell", "amount": 0.1, "slipage": 5})  # typo refused
    assert "address" in reader.error("portfolio", {"address": "0xnothex"})
    assert "venue" in reader.error("price", {"venue": "v9"}).lower()
    assert "nope" in reader.error("nope", {})


@pytest.mark.chain
def test_execution_is_refused_without_the_opt_in(reader, mcp_home):
    proposal = reader.ok("propose_swap", {"side": "sell", "amount": 0.05})
    assert proposal["risk"]["ok"] and proposal["min_amount_out"] > 0 and proposal["deadline"] > _chain_now(mcp_home)
    assert _row(proposal["id"])["status"] == "proposed"  # journalled: another process can see it
    before = reader.ok("portfolio")
    refusal = reader.error("execute_swap", {"proposal_id": proposal["id"]})
    assert "--allow-execute" in refusal and "nothing was sent" in refusal
    assert _row(proposal["id"])["status"] == "proposed" and _row(proposal["id"])["tx_hash"] is None
    assert reader.ok("portfolio")["eth"] == before["eth"]


@pytest.mark.chain
def test_execution_with_the_opt_in_sends_a_proposal_once(executor):
    before = executor.ok("portfolio")
    proposal = executor.ok("propose_swap", {"side": "sell", "amount": 0.05, "asset": "ETH", "max_slippage_bps": 100})
    receipt = executor.ok("execute_swap", {"proposal_id": proposal["id"]})
    assert receipt["status"] == "confirmed" and receipt["id"] == proposal["id"] and receipt["tx_hash"]
    assert receipt["amount_out"] >= proposal["min_amount_out"]
    row = _row(proposal["id"])
    assert row["status"] == "confirmed" and row["tx_hash"] == receipt["tx_hash"]
    after = executor.ok("portfolio")
    assert after["usdc"] == pytest.approx(before["usdc"] + receipt["amount_out"], abs=1e-6)
    assert after["eth"] < before["eth"] - 0.05 + 1e-9  # 0.05 ETH and the gas
    assert "already executed" in executor.error("execute_swap", {"proposal_id": proposal["id"]})
    assert "no proposal 'f00d'" in executor.error("execute_swap", {"proposal_id": "f00d"})
    assert executor.error("execute_swap", {"proposal_id": ""}).startswith("invalid arguments")


@pytest.mark.chain
def test_a_refused_proposal_never_executes(executor):
    proposal = executor.ok("propose_swap", {"side": "sell", "amount": 1_000_000})  # far beyond the wallet
    assert proposal["risk"]["ok"] is False and proposal["risk"]["reasons"]
    assert "risk check" in executor.error("execute_swap", {"proposal_id": proposal["id"]})
    assert _row(proposal["id"])["status"] == "refused"


async def _http_checks(url: str, errors: list) -> None:
    """Over streamable HTTP: the same tools, and a proposal refused once its deadline passed."""
    import anyio
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            assert sorted(t.name for t in (await session.list_tools()).tools) == sorted(TOOLS)
            proposal = await session.call_tool("propose_swap", {"side": "sell", "amount": 0.01})
            assert not proposal.is_error, proposal.content[0].text
            # the deadline is 1 s on the chain's clock, which runs at the wall clock's pace from its own time:
            # 2.5 s later the router would revert it
            await anyio.sleep(2.5)
            expired = await session.call_tool("execute_swap", {"proposal_id": proposal.structured_content["id"]})
            errors.append((proposal.structured_content["id"], expired.is_error, expired.content[0].text))


@pytest.mark.chain
def test_streamable_http_and_an_expired_proposal(mcp_home, tmp_path):
    import anyio

    server = subprocess.Popen([sys.executable, "-m", "agent.cli", "mcp", "--http", "--port", "0", "--allow-execute",
                               "--deadline", "1s"], cwd=ROOT, env={**os.environ, **server_env(mcp_home)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in server.stderr:  # the server prints the URL of the port it got
            match = re.search(r"(http://127\.0\.0\.1:\d+/mcp)", line)
            if match:
                url = match.group(1)
                break
        assert url, "the server did not say where it listens"
        seen: list = []
        anyio.run(_http_checks, url, seen)
        pid, refused, text = seen[0]
        assert refused and "expired" in text and "\n" not in text
        assert _row(pid)["status"] == "expired" and _row(pid)["tx_hash"] is None
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.stdout.read() == ""  # nothing on stdout over HTTP either


def test_stdout_carries_only_json_rpc_and_no_secret(tmp_path):
    """A raw client: every stdout line is a JSON-RPC message, even when a tool fails (the RPC URL in the
    environment, with a key in its path, answers nothing) and when the policy (torch) loads; the server's own
    lines are on stderr, and the key is in neither."""
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "price", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "signal", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "quote", "arguments": {"side": 1}}},
    ]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **server_env(tmp_path),
           "TRADER_RPC_URL": f"http://127.0.0.1:9/v3/{SECRET}"}  # port 9: nothing listens
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "mcp"], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    replies = {}
    try:
        for request in requests:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            while "id" in request and request["id"] not in replies:
                line = proc.stdout.readline()
                assert line, proc.stderr.read()
                message = json.loads(line)  # fails on anything but JSON
                assert message["jsonrpc"] == "2.0"
                replies[message.get("id")] = message
        rest, stderr = proc.communicate(timeout=60)  # closes stdin: the client is gone, the server exits
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rest == "" and proc.returncode == 0
    assert "serving on stdio" in stderr and "execution off" in stderr
    no_chain = replies[2]["result"]
    assert no_chain["isError"] and "<redacted>" in no_chain["content"][0]["text"]
    assert SECRET not in json.dumps(replies) and SECRET not in stderr
    assert replies[3]["result"]["structuredContent"]["wallet"].startswith("no chain")  # history bars, flat
    assert replies[4]["result"]["isError"] and "side" in replies[4]["result"]["content"][0]["text"]


@pytest.mark.parametrize("flags, words", [
    (["--http", "--host", "0.0.0.0"], "loopback"),
    (["--deadline", "0s"], "--deadline"),
    (["--port", "70000"], "port"),
    (["--risk-config", "/nonexistent/risk.yaml"], "does not exist"),
])
def test_bad_options_are_one_line_errors_before_serving(tmp_path, flags, words):
    proc = run_trader(["mcp", *flags], env={**os.environ, "TRADER_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and words in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.chain
@pytest.mark.llm
def test_ask_trader_model_with_the_smallest_real_model(reader):
    opinion = reader.ok("ask_trader_model", {"question": "ETH is at 2000 USDC and falling. BUY, SELL or HOLD?"})
    assert opinion["answer"] and "SmolLM2" in opinion["model"]
    assert opinion["action"] in ("BUY", "SELL", "HOLD", "UNKNOWN")
