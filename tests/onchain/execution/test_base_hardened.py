"""The Base replica and V4 swaps on the hardened path, as on mainnet: the default wallet in Base's USDC, the
replica's identity and state kept across restarts, every hash (the Permit2 approval's too) journalled before it
is sent, reconciliation after a crash and a restart, and concurrent USDC-in swaps signing distinct Permit2 nonces
under the signing lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from onchain.node import chain as C
from onchain.venues import v4_swap
from onchain.execution.journal import Journal
from onchain.manage import fund, start_chain, stop_chain
from onchain.networks import BASE_USDC, MAINNET, PERMIT2
from onchain.execution.reconcile import connect
from onchain.node.rpc import calldata, decode
from onchain.execution.swap import execute_swap, propose_swap
from tests.conftest import HANG_S, replica_chain
from tests.onchain.conftest import (RUN_TRADER, KillNodeAfter, assert_matches_chain, killed_swap, reconciled_row,
                                    seeded_home, trader_cli)
from trader_core.errors import ChainUnavailable

pytestmark = pytest.mark.chain
TRADER = C.dev_account(0).address

@pytest.fixture(scope="module")
def base_managed_home(tmp_path_factory, base_chain, base_cache_home):
    """`chain up --network base` in a home of its own (seeded with the session's Base build)."""
    with replica_chain(seeded_home(base_cache_home, tmp_path_factory.mktemp("base_managed")), "base") as home:
        yield home


@pytest.fixture
def home(base_managed_home, monkeypatch):
    monkeypatch.setenv("TRADER_HOME", str(base_managed_home))
    return base_managed_home


def balances(chain) -> tuple[int, int, int]:
    """(ETH wei, Base USDC raw, nonce) of the trading account."""
    eth, usdc, nonce = chain.rpc.batch([
        ("eth_getBalance", [TRADER, "latest"]),
        ("eth_call", [{"to": BASE_USDC, "data": calldata("balanceOf(address)", TRADER)}, "latest"]),
        ("eth_getTransactionCount", [TRADER, "latest"]),
    ])
    return int(eth, 16), int(usdc, 16), int(nonce, 16)


def permit2_usdc_allowance(chain) -> int:
    return decode(["uint256"], chain.call(BASE_USDC, calldata("allowance(address,address)", TRADER, PERMIT2)))[0]


def test_base_chain_up_gives_the_default_wallet_in_base_usdc_and_an_identity(home):
    chain = connect()
    info = C.read_state()
    assert (info.network, info.chain_id, info.mode) == ("base", 8453, "replica")
    assert info.state_file.endswith("replica-base-state.json") and info.restored_block is None
    eth, usdc, _ = balances(chain)
    assert (eth, usdc) == (10 * 10**18, 25_000 * 10**6)  # a new chain: the default wallet
    # the wallet is Base's USDC: mainnet's USDC address holds nothing on this chain
    assert chain.rpc("eth_getCode", MAINNET.usdc, "latest") in ("0x", "0x0")
    # the seed state carries a random identity, so the journal tells this replica apart from any other node
    marker = chain.rpc("eth_getStorageAt", C.IDENTITY_ADDRESS, "0x0", "latest")
    assert int(marker, 16) != 0 and chain.node_id == f"8453:{marker}:replica"


def test_v4_usdc_swap_journals_the_permit2_approval_and_the_swap_before_sending(home):
    chain = connect()
    fund(chain, TRADER, eth=20.0, usdc=20_000.0)
    # start from an account that never approved Permit2
    chain.rpc("anvil_setStorageAt", BASE_USDC, v4_swap.usdc_permit2_allowance_slot(TRADER), "0x" + "00" * 32)
    assert permit2_usdc_allowance(chain) == 0
    before = balances(chain)
    trade_id = killed_swap(home, "approve_tx_hash", "buy", 700, "USDC")  # killed before the approval left
    row = Journal().get(trade_id)
    assert row["status"] == "pending" and row["approve_tx_hash"] and row["tx_hash"] is None
    assert row["venue"] == "v4" and row["chain_id"] == 8453 and row["nonce"] == before[2]
    row = reconciled_row(home, trade_id)
    assert row["status"] == "dropped" and "approval" in row["reason"]
    assert balances(chain) == before and permit2_usdc_allowance(chain) == 0

    trade_id = killed_swap(home, "tx_hash", "buy", 700, "USDC")  # the Permit2 approval mined, killed before the swap
    row = reconciled_row(home, trade_id)
    assert row["status"] == "dropped" and "was mined" in row["reason"]
    assert_matches_chain(chain, row)
    eth, usdc, nonce = balances(chain)
    assert usdc == before[1] and nonce == before[2] + 1  # only the approval happened
    assert permit2_usdc_allowance(chain) == 2**256 - 1  # to Permit2; each swap's permit bounds the router

    done = json.loads(trader_cli(home, "swap", "buy", "700", "USDC", "--yes", "--json").stdout)
    row = Journal().get(done["id"])
    assert done["status"] == "confirmed" and row["approve_tx_hash"] is None and row["venue"] == "v4"
    assert_matches_chain(chain, row)


def test_v4_swap_lost_with_the_node_is_orphaned_after_the_restart_and_the_kept_one_survives(home, capsys):
    chain = connect()
    journal = Journal()
    fund(chain, TRADER, eth=20.0, usdc=20_000.0)
    # Permit2 already approved, so the one transaction sent (and lost) is the swap itself
    chain.rpc("anvil_setStorageAt", BASE_USDC, v4_swap.usdc_permit2_allowance_slot(TRADER), "0x" + "ff" * 32)
    kept = execute_swap(chain, propose_swap(chain, "sell", 0.1, "ETH", journal=journal), journal)
    after_kept = balances(chain)  # checkpointed with the confirmed swap
    proposal = propose_swap(chain, "buy", 900, "USDC", journal=journal)
    old = C.read_state()
    chain.rpc = KillNodeAfter(chain.rpc, old.pid, 1)
    with pytest.raises(ChainUnavailable, match="journalled as pending"):
        execute_swap(chain, proposal, journal)
    row = journal.get(proposal.id)
    assert row["status"] == "pending" and row["tx_hash"] and row["approve_tx_hash"] is None
    info = start_chain(detach=False, network="base")  # restores Base's saved state and reconciles
    assert info.pid != old.pid and info.restored_block is not None and info.network == "base"
    err = capsys.readouterr().err
    assert "restored the replica" in err and "(base, saved at block" in err
    chain = connect()
    row = Journal().get(proposal.id)
    assert row["status"] == "orphaned" and "restarted" in row["reason"]
    assert_matches_chain(chain, row)
    first = Journal().get(kept.id)
    assert first["status"] == "confirmed" and first["node_instance"] == chain.instance
    assert_matches_chain(chain, first)
    assert balances(chain) == after_kept


def test_base_state_is_kept_across_chain_down_and_up_and_fresh_starts_over(home, capsys):
    chain = connect()
    fund(chain, TRADER, eth=4.25, usdc=321.0)
    C.checkpoint(chain)
    identity = chain.node_id
    stop_chain()
    info = start_chain(detach=False, network="base")
    assert info.restored_block is not None
    chain = connect()
    assert balances(chain)[:2] == (int(4.25e18), 321 * 10**6) and chain.node_id == identity
    stop_chain()
    info = start_chain(fresh=True, detach=False, network="base")
    assert info.restored_block is None and "discarded the saved replica state" in capsys.readouterr().err
    assert balances(connect())[:2] == (10 * 10**18, 25_000 * 10**6)


def test_concurrent_v4_usdc_swaps_sign_distinct_permit2_nonces(home):
    chain = connect()
    fund(chain, TRADER, eth=20.0, usdc=20_000.0)
    nonce_before = v4_swap.decode_permit2_allowance(chain.rpc.batch([v4_swap.permit2_allowance_call(TRADER)])[0])[2]
    env = {**os.environ, "TRADER_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-c", RUN_TRADER, "swap", "buy", amount, "USDC", "--yes", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for amount in ("300", "400", "500")]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=HANG_S)
        assert proc.returncode == 0, err
        outs.append(json.loads(out))
    assert all(o["status"] == "confirmed" for o in outs) and len({o["tx_hash"] for o in outs}) == 3
    nonce_after = v4_swap.decode_permit2_allowance(chain.rpc.batch([v4_swap.permit2_allowance_call(TRADER)])[0])[2]
    assert nonce_after == nonce_before + 3  # one permit each, none reused, none refused


def test_a_private_replica_is_never_stopped_as_an_orphan_of_its_home(base_chain, base_cache_home, monkeypatch):
    """`chain up`/`chain down` sweep the home for unrecorded anvils; a PrivateReplica (bench, tests) started in
    that home is its owner's, not an orphan (the sweep used to stop the session's Base replica)."""
    monkeypatch.setenv("TRADER_HOME", str(base_cache_home))  # where the session's private Base replica started
    assert C.find_orphans() == []
    assert stop_chain() is None  # nothing recorded here: only the orphan sweep runs
    assert base_chain.rpc("eth_chainId") == hex(8453)
