"""One real anvil replica for the whole session (TRADER_HOME in a tmp dir), always stopped at the end."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import CLEAN_ENV, HANG_S, clean_env, history_bars, replica_build, replica_chain, seeded_home
from trader_core.errors import DependencyMissing


@pytest.fixture(scope="session")
def chain_home(tmp_path_factory, replica_build_home):
    with replica_chain(seeded_home(replica_build_home, tmp_path_factory.mktemp("trader_home"))) as home:
        yield home


@pytest.fixture(scope="session")
def base_cache_home(tmp_path_factory):
    """A TRADER_HOME holding the private Base replica's cached build (with the real history `chain up` bakes),
    built once per test run, whichever xdist worker asks first."""
    return replica_build(tmp_path_factory, "base")


@pytest.fixture
def base_home(base_chain, base_cache_home, tmp_path):
    """A TRADER_HOME holding the Base build's cache, so `chain up --network base` there loads it in a second."""
    return seeded_home(base_cache_home, tmp_path / "base_home")


@pytest.fixture(scope="session")
def base_chain(base_cache_home, tmp_path_factory):
    """A private offline Base replica (chain id 8453, Uniswap V4, with the real history `chain up` bakes) for the
    session; always stopped."""
    from onchain.node.artifacts import find_anvil

    try:
        find_anvil()
    except DependencyMissing as exc:
        pytest.skip(str(exc))
    from onchain.manage import PrivateReplica

    mp = clean_env(seeded_home(base_cache_home, tmp_path_factory.mktemp("base_chain_home")))
    try:
        replica = PrivateReplica(network="base", history_bars=history_bars())
        chain = replica.__enter__()
    finally:
        mp.undo()
    try:
        yield chain
    finally:
        replica.__exit__()


@pytest.fixture(autouse=True)
def _home(request, monkeypatch, tmp_path):
    """Every onchain test runs with TRADER_HOME set: the session chain's home if it uses the chain."""
    if "chain_home" in request.fixturenames or "chain" in request.fixturenames:
        home = request.getfixturevalue("chain_home")
    else:
        home = tmp_path
    monkeypatch.setenv("TRADER_HOME", str(home))
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
def chain(chain_home):
    from onchain.node.chain import connect

    return connect()


@pytest.fixture
def journal(tmp_path):
    from onchain.execution.journal import Journal

    j = Journal(tmp_path / "journal.sqlite")
    yield j
    j.close()


@pytest.fixture
def trader(chain):
    """The trading account (anvil dev account 0), funded fresh for each test."""
    from onchain.node.chain import dev_account
    from onchain.manage import fund

    address = dev_account(0).address
    fund(chain, address, eth=100.0, usdc=100_000.0)
    return address


def nonce(chain, address) -> int:
    return int(chain.rpc("eth_getTransactionCount", address, "latest"), 16)


def kill_hard(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if open(f"/proc/{pid}/stat").read().split()[2] == "Z":
            return
        time.sleep(0.02)


@pytest.fixture
def trader_funded(trader):
    return trader


def assert_matches_chain(chain, row: dict) -> None:
    """A settled row and the chain agree: confirmed iff its receipt is on chain with status 1."""
    assert row["status"] not in ("pending", "proposed")
    receipt = chain.rpc("eth_getTransactionReceipt", row["tx_hash"]) if row["tx_hash"] else None
    assert (row["status"] == "confirmed") == (receipt is not None and int(receipt["status"], 16) == 1)


class KillNodeAfter:
    """Wraps a chain's Rpc: SIGKILLs anvil right after the n-th eth_sendRawTransaction reached it."""

    def __init__(self, rpc, pid: int, sends: int = 1):
        self.rpc, self.pid, self.left = rpc, pid, sends

    def __call__(self, method, *params):
        out = self.rpc(method, *params)
        if method == "eth_sendRawTransaction":
            self.left -= 1
            if self.left == 0:
                kill_hard(self.pid)
        return out

    def batch(self, calls):
        return self.rpc.batch(calls)

    def close(self):
        self.rpc.close()


RUN_TRADER = "from agent.cli import main; main()"

# A swap (on `venue`, or the network's default) in a separate process that SIGKILLs itself at a chosen step: right after a journal field is written
# (before that transaction is sent), or just before the receipt would be recorded (after the send).
KILLED_SWAP = r"""
import os, signal, sys
from onchain.execution.journal import Journal
from onchain.execution.reconcile import connect
from onchain.execution.swap import execute_swap, propose_swap

step, side, amount, asset = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
venue = sys.argv[5] or None  # empty: the network's default venue

class DiesAt(Journal):
    def update(self, trade_id, **fields):
        super().update(trade_id, **fields)
        if step in fields:
            os.kill(os.getpid(), signal.SIGKILL)

    def transition(self, trade_id, expected, **fields):
        if fields.get("status") == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().transition(trade_id, expected, **fields)

journal = DiesAt()
chain = connect()
proposal = propose_swap(chain, side, amount, asset, venue, journal=journal)
print(proposal.id, flush=True)
execute_swap(chain, proposal, journal)
"""


def trader_cli(home, *args) -> subprocess.CompletedProcess:
    """The real `trader` entry point in a child process with TRADER_HOME=home."""
    return subprocess.run([sys.executable, "-c", RUN_TRADER, *args], capture_output=True, text=True, timeout=HANG_S,
                          env={**os.environ, "TRADER_HOME": str(home)})


def killed_swap(home, step: str, side: str, amount: float, asset: str, venue: str | None = None) -> str:
    """Run KILLED_SWAP (a swap that SIGKILLs itself at journal step `step`); returns the trade id."""
    proc = subprocess.run([sys.executable, "-c", KILLED_SWAP, step, side, str(amount), asset, venue or ""],
                          capture_output=True, text=True, timeout=HANG_S, env={**os.environ, "TRADER_HOME": str(home)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return proc.stdout.strip()


def reconciled_row(home, trade_id: str) -> dict:
    """The journal row of `trade_id` after `trader trades --reconcile`."""
    proc = trader_cli(home, "trades", "--reconcile", "--json", "--limit", "0")
    assert proc.returncode == 0, proc.stderr
    return next(r for r in json.loads(proc.stdout) if r["id"] == trade_id)


class JsonHandler(BaseHTTPRequestHandler):
    """An HTTP stand-in for an RPC endpoint: subclasses answer POSTs with `self.reply`; nothing is logged."""

    def reply(self, data: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve `handler` on a free loopback port (a daemon thread) while the block runs; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
