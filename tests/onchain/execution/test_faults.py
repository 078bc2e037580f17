"""Faults on a real anvil: a process or the node killed at every step of a swap, a receipt that does not come,
a restart, a port someone else holds, an orphaned node, SIGTERM. Afterwards every journal row is what the chain
says: nothing lost, nothing invented, nothing left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from onchain.node import chain as C
from onchain.execution.journal import Journal
from onchain.manage import fund, start_chain, stop_chain
from onchain.execution.reconcile import connect, reconcile
from onchain.execution.swap import execute_swap, propose_swap
from tests.conftest import history_bars, replica_chain
from tests.onchain.conftest import (KillNodeAfter, assert_matches_chain, killed_swap, reconciled_row, seeded_home,
                                    trader_cli)
from trader_core.errors import ChainUnavailable, ConfigError, TransactionPending

pytestmark = pytest.mark.chain
TRADER = C.dev_account(0).address

@pytest.fixture(scope="module")
def fault_home(tmp_path_factory, chain_home):
    with replica_chain(seeded_home(chain_home, tmp_path_factory.mktemp("fault_home"))) as home:
        yield home


@pytest.fixture
def home(fault_home, monkeypatch):
    monkeypatch.setenv("TRADER_HOME", str(fault_home))
    chain = connect()
    fund(chain, TRADER, eth=50.0, usdc=50_000.0)
    C.checkpoint(chain)
    return fault_home


def balances(chain) -> tuple[int, int, int]:
    """(ETH wei, USDC raw, nonce) of the trading account."""
    from onchain.node.rpc import calldata

    eth, usdc, nonce = chain.rpc.batch([
        ("eth_getBalance", [TRADER, "latest"]),
        ("eth_call", [{"to": C.USDC, "data": calldata("balanceOf(address)", TRADER)}, "latest"]),
        ("eth_getTransactionCount", [TRADER, "latest"]),
    ])
    return int(eth, 16), int(usdc, 16), int(nonce, 16)


# --- the CLI process killed ------------------------------------------------------------------------------

def test_cli_killed_after_the_journal_write_before_the_send_is_dropped_by_the_node_that_saw_nothing(home):
    chain = connect()
    before = balances(chain)
    trade_id = killed_swap(home, "tx_hash", "sell", 0.25, "ETH", "v2")
    row = Journal().get(trade_id)
    assert row["status"] == "pending" and row["tx_hash"] and row["nonce"] == before[2]
    row = reconciled_row(home, trade_id)
    assert row["status"] == "dropped" and "never reached the node" in row["reason"]
    assert_matches_chain(chain, row)
    assert balances(chain) == before  # nothing swapped, nonce unused


def test_cli_killed_after_the_send_is_reconciled_as_confirmed(home):
    chain = connect()
    before = balances(chain)
    trade_id = killed_swap(home, "confirmed", "sell", 0.3, "ETH", "v2")
    assert Journal().get(trade_id)["status"] == "pending"
    row = reconciled_row(home, trade_id)
    assert row["status"] == "confirmed" and row["amount_in"] == 0.3
    assert_matches_chain(chain, row)
    eth, usdc, nonce = balances(chain)
    assert before[0] - eth == pytest.approx((0.3 + row["gas_cost_eth"]) * 1e18, abs=1e3)
    assert usdc - before[1] == round(row["amount_out"] * 1e6) and nonce == before[2] + 1


def test_cli_killed_during_the_approval_nothing_swapped_nothing_lost(home):
    chain = connect()
    fund(chain, TRADER, usdc=50_000.0)
    before = balances(chain)
    allowance = chain.call(C.USDC, _allowance_data())
    trade_id = killed_swap(home, "approve_tx_hash", "buy", 700, "USDC", "v2")  # killed before the approval left
    row = reconciled_row(home, trade_id)
    assert row["status"] == "dropped" and "approval" in row["reason"] and row["approve_tx_hash"]
    assert balances(chain) == before and chain.call(C.USDC, _allowance_data()) == allowance

    trade_id = killed_swap(home, "tx_hash", "buy", 700, "USDC", "v2")  # the approval mined, killed before the swap
    row = reconciled_row(home, trade_id)
    assert row["status"] == "dropped" and "approval" in row["reason"] and "was mined" in row["reason"]
    assert_matches_chain(chain, row)
    eth, usdc, nonce = balances(chain)
    assert usdc == before[1] and nonce == before[2] + 1  # only the approval happened
    assert int(chain.call(C.USDC, _allowance_data()), 16) == 700 * 10**6


def _allowance_data() -> str:
    from onchain.node.rpc import calldata

    return calldata("allowance(address,address)", TRADER, C.V2_ROUTER)


# --- the node killed ------------------------------------------------------------------------------------

@pytest.mark.parametrize("side,amount,asset,sends,what", [
    ("sell", 0.4, "ETH", 1, "swap"),       # the swap mined, then the node died before the receipt was read
    ("buy", 900, "USDC", 1, "approval"),   # the node died right after the approval was sent
])
def test_node_killed_after_send_then_restarted_every_row_matches_the_chain(home, side, amount, asset, sends,
                                                                            what):
    chain = connect()
    journal = Journal()
    kept = execute_swap(chain, propose_swap(chain, "sell", 0.1, "ETH", "v2", journal=journal), journal)
    after_kept = balances(chain)  # checkpointed with the confirmed swap
    proposal = propose_swap(chain, side, amount, asset, "v2", journal=journal)
    old = C.read_state()
    chain.rpc = KillNodeAfter(chain.rpc, old.pid, sends)
    with pytest.raises(ChainUnavailable, match="journalled as pending") as err:
        execute_swap(chain, proposal, journal)
    assert "\n" not in str(err.value)
    row = journal.get(proposal.id)
    assert row["status"] == "pending" and (row["tx_hash"] or row["approve_tx_hash"])
    with pytest.raises(ChainUnavailable, match="trader chain up"):
        connect()
    info = start_chain(detach=False)  # restarts from the saved state and reconciles the journal
    assert info.pid != old.pid and info.restored_block is not None
    chain = connect()
    row = Journal().get(proposal.id)
    assert row["status"] == "orphaned" and "restarted" in row["reason"] and what in row["reason"]
    assert_matches_chain(chain, row)
    first = Journal().get(kept.id)
    assert first["status"] == "confirmed"  # none lost: the swap before the crash survived the restart
    assert_matches_chain(chain, first)
    assert balances(chain) == after_kept  # none invented: the chain is as saved after the kept swap


def test_receipt_timeout_leaves_the_row_pending_until_a_later_chain_up_settles_it(home):
    chain = connect()
    journal = Journal()
    proposal = propose_swap(chain, "sell", 0.2, "ETH", "v2", journal=journal)
    chain.rpc("evm_setAutomine", False)
    try:
        with pytest.raises(TransactionPending, match="pending") as err:
            execute_swap(chain, proposal, journal, timeout=0.5)
        assert "reconcile" in str(err.value)
        row = journal.get(proposal.id)
        assert row["status"] == "pending"
        assert reconcile(chain, journal) == [] and journal.get(proposal.id)["status"] == "pending"  # in the pool
    finally:
        chain.rpc("evm_setAutomine", True)
    chain.rpc("evm_mine")
    start_chain()  # already running: still reconciles
    row = journal.get(proposal.id)
    assert row["status"] == "confirmed" and row["amount_in"] == 0.2
    assert_matches_chain(chain, row)


# --- restarts keep state; --fresh says so -----------------------------------------------------------------

def test_a_restart_keeps_funded_balances_and_fresh_resets_to_the_default_wallet(home, capsys):
    chain = connect()
    fund(chain, TRADER, eth=3.5, usdc=123.0)
    C.checkpoint(chain)
    confirmed = [r for r in Journal().list_trades(status="confirmed")]
    stop_chain()
    info = start_chain(detach=False)
    assert info.restored_block is not None and "restored the replica" in capsys.readouterr().err
    eth, usdc, _ = balances(connect())
    assert (eth, usdc) == (int(3.5e18), 123_000_000)
    stop_chain()
    info = start_chain(fresh=True, detach=False, history_bars=history_bars())  # as `trader chain up --fresh`
    assert info.restored_block is None and "discarded the saved replica state" in capsys.readouterr().err
    chain = connect()
    eth, usdc, _ = balances(chain)
    assert (eth, usdc) == (int(10e18), 25_000 * 10**6)  # the default wallet
    # swaps confirmed on the discarded chain are not on this one: the journal says so instead of keeping them
    for row in confirmed:
        assert Journal().get(row["id"])["status"] == "orphaned"
    with pytest.raises(ConfigError, match="--fresh"):
        stop_chain()
        start_chain(price=3000.0, detach=False)
    start_chain(detach=False)


# --- processes: the port, orphans, signals ----------------------------------------------------------------

def test_chain_up_on_a_port_another_node_holds_is_refused_and_starts_nothing(home, tmp_path, monkeypatch):
    busy = C.read_state().port  # held by the module's node for the whole test: no other test can take it
    assert C.pid_listens_on(C.read_state().pid, busy) and not C.pid_listens_on(os.getpid(), busy)
    other = tmp_path / "other_home"
    proc = trader_cli(other, "chain", "up", "--port", str(busy))
    assert proc.returncode == 1 and "already in use" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (other / "chain" / "state.json").exists()
    monkeypatch.setenv("TRADER_HOME", str(other))
    assert C.find_orphans() == []


def test_a_picked_port_taken_before_anvil_binds_it_is_picked_again(tmp_path, monkeypatch):
    """The race behind a free port: another process takes it between our pick and anvil's bind."""
    import socket

    from onchain.node import process as P

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        held = taken.getsockname()[1]
        picks = iter([held, held, P.free_port()])
        monkeypatch.setattr(P, "free_port", lambda: next(picks))
        monkeypatch.setattr(P, "port_is_free", lambda port: True)  # free when checked, taken before anvil binds
        node = P.launch_anvil(None, log_file=tmp_path / "anvil.log", detach=False, managed=False)
        try:
            assert node.port != held and P.pid_listens_on(node.pid, node.port)
            assert "in use" in (tmp_path / "anvil.log").read_text().lower()  # anvil did fail on the taken one
        finally:
            node.stop()
    monkeypatch.undo()
    with socket.socket() as taken, pytest.raises(ConfigError, match="already in use"):
        taken.bind(("127.0.0.1", 0))
        taken.listen()  # an explicit --port is never swapped for another
        P.launch_anvil(taken.getsockname()[1], log_file=tmp_path / "anvil.log", detach=False, managed=False)


def test_chain_up_finds_and_stops_an_orphan_of_its_home(chain_home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRADER_HOME", str(seeded_home(chain_home, tmp_path)))
    first = start_chain(detach=False)
    C.state_path().write_text("{ garbage")  # the record is lost; the process is not
    assert C.find_orphans() == [first.pid]
    second = start_chain(detach=False)
    try:
        assert second.pid != first.pid and not C.pid_is_anvil(first.pid)
        assert f"orphan process (pid {first.pid})" in capsys.readouterr().err
        assert C.find_orphans() == []
    finally:
        stop_chain()
    assert not C.pid_is_anvil(second.pid)


SIGTERM_HARNESS = r"""
import sys, time
import agent.cli as cli

@cli.app.command("hold-chain")
def hold_chain():
    from onchain.api import start_chain, stop_chain
    start_chain()  # detached, like `trader demo`: only the command's own `finally` stops it
    try:
        print("up", flush=True)
        time.sleep(120)
    finally:
        stop_chain()

sys.argv = ["trader", "hold-chain"]
cli.main()
"""


def test_sigterm_to_a_command_that_started_a_chain_stops_the_chain(chain_home, tmp_path):
    seeded_home(chain_home, tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_HARNESS], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "TRADER_HOME": str(tmp_path)})
    try:
        assert proc.stdout.readline().strip() == "up", proc.stderr.read()
        pid = json.loads((tmp_path / "chain" / "state.json").read_text())["pid"]
        assert C.pid_is_anvil(pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 60  # guards a hang only: a loaded machine reaps slowly
    while C.pid_is_anvil(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not C.pid_is_anvil(pid)
