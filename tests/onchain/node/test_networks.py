"""Both replicas carry what real clients expect (checked with viem, a third-party client), `chain up --network
base` end to end, the Base fork path, the real V4 swap replay, and journal rows that never mix the two networks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from onchain.node import chain as C
from onchain.venues import v4
from onchain.networks import (MAINNET, MAINNET_QUOTER_V1, MAINNET_SWAP_ROUTER02, MAINNET_UNIVERSAL_ROUTER,
                              MAINNET_V4_POOL_MANAGER, MULTICALL3, PERMIT2)
from onchain.node.rpc import calldata, decode
from onchain.venues.v2_v3 import get_quote, recent_swaps, swaps_to_candles
from tests.conftest import HANG_S
from trader_core.errors import ConfigError

pytestmark = pytest.mark.chain
VIEM = Path(__file__).parents[1] / "viem_client.mjs"


def viem(rpc_url: str, network: str) -> dict:
    from onchain.node.artifacts import node_modules

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (node_modules() / "viem").is_dir():
        pytest.skip("viem is not installed (npm ci)")
    proc = subprocess.run([node, str(VIEM), rpc_url, network], capture_output=True, text=True, timeout=HANG_S,
                          cwd=Path(__file__).parents[3])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def trader(*args: str, home: Path, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", "from agent.cli import main; main()", *args], capture_output=True,
                          text=True, timeout=HANG_S, env={**os.environ, "TRADER_HOME": str(home)})
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("name", sorted(MAINNET.contracts))
def test_mainnet_periphery_at_canonical_addresses(chain, name):
    assert len(chain.rpc("eth_getCode", MAINNET.contracts[name], "latest")) > 2000, name


def test_mainnet_periphery_is_wired_for_real(chain):
    # QuoterV1 and QuoterV2 quote the same pool identically
    one_eth = 10**18
    v1 = decode(["uint256"], chain.call(MAINNET_QUOTER_V1, calldata(
        "quoteExactInputSingle(address,address,uint24,uint256,uint160)", C.WETH, C.USDC, 500, one_eth, 0)))[0]
    assert v1 == get_quote(chain, "sell", 1.0, "ETH", "v3").amount_out_raw
    assert decode(["address"], chain.call(MAINNET_SWAP_ROUTER02, calldata("factoryV2()")))[0] == C.V2_FACTORY.lower()
    assert decode(["address"], chain.call(MAINNET_SWAP_ROUTER02, calldata("factory()")))[0] == C.V3_FACTORY.lower()
    assert decode(["address"], chain.call(MAINNET_UNIVERSAL_ROUTER, calldata("poolManager()")))[0] == \
        MAINNET_V4_POOL_MANAGER.lower()
    # Permit2 answers with mainnet's domain separator (chain id 1, its canonical address)
    domain = keccak(abi_encode(["bytes32", "bytes32", "uint256", "address"], [
        keccak(text="EIP712Domain(string name,uint256 chainId,address verifyingContract)"),
        keccak(text="Permit2"), 1, PERMIT2]))
    assert chain.call(PERMIT2, calldata("DOMAIN_SEPARATOR()")) == "0x" + domain.hex()
    assert decode(["uint256"], chain.call(MULTICALL3, calldata("getChainId()")))[0] == 1


@pytest.mark.slow
def test_viem_reads_quotes_and_swaps_on_the_mainnet_replica(chain):
    quote_v3 = get_quote(chain, "sell", 1.0, "ETH", "v3").amount_out_raw
    reserves = decode(["uint112", "uint112", "uint32"], chain.call(C.V2_PAIR, calldata("getReserves()")))
    out = viem(chain.rpc_url, "mainnet")
    assert out["chainId"] == 1 and out["multicall3"].lower() == MULTICALL3.lower()
    assert [int(r) for r in out["v2Reserves"]] == list(reserves[:2])  # read through Multicall3
    assert out["usdcDecimals"] == 6
    assert int(out["quoterV1OneEth"]) == quote_v3  # QuoterV1 through viem == our QuoterV2 quote
    assert out["swapRouter02Status"] == "success"  # SwapRouter02, signed and sent by viem's wallet client
    assert int(out["swapRouter02UsdcReceived"]) == quote_v3


@pytest.mark.slow
def test_viem_reads_and_quotes_the_base_replica(base_chain):
    sqrt_p, tick, liquidity = v4.read_pool(base_chain)
    quote = get_quote(base_chain, "sell", 1.0, "ETH").amount_out_raw
    out = viem(base_chain.rpc_url, "base")
    assert out["chainId"] == 8453 and out["multicall3"].lower() == MULTICALL3.lower()
    assert (int(out["sqrtPriceX96"]), out["tick"], int(out["liquidity"])) == (sqrt_p, tick, liquidity)
    assert int(out["v4QuoteOneEth"]) == quote


@pytest.mark.slow
def test_chain_up_network_base_end_to_end(base_chain, base_home):
    """`trader chain up --network base` (from the cached build), then price, quote and a swap on v4 by default."""
    try:
        info = json.loads(trader("chain", "up", "--network", "base", "--json", home=base_home).stdout)
        assert (info["network"], info["chain_id"], info["mode"]) == ("base", 8453, "replica")
        price = json.loads(trader("price", "--json", home=base_home).stdout)
        assert price["venue"] == "v4" and price["price"] == pytest.approx(info["price"], rel=1e-12)
        q = json.loads(trader("quote", "sell", "1", "ETH", "--json", home=base_home).stdout)
        assert q["venue"] == "v4" and 0 < q["amount_out"] < q["spot_price"]
        me = C.dev_account(0).address
        funded = json.loads(trader("chain", "fund", me, "--usdc", "1000", "--json", home=base_home).stdout)
        assert funded["usdc"] == 1000.0 and funded["price"] == pytest.approx(price["price"], rel=1e-9)
        s = json.loads(trader("swap", "buy", "250", "USDC", "--yes", "--json", home=base_home).stdout)
        assert s["status"] == "confirmed" and s["venue"] == "v4" and s["amount_in"] == 250.0
        s = json.loads(trader("swap", "sell", "0.05", "ETH", "--yes", "--json", home=base_home).stdout)
        assert s["status"] == "confirmed" and s["venue"] == "v4"
        wrong = trader("chain", "up", "--json", home=base_home, ok=False)  # mainnet asked, Base running
        assert wrong.returncode == 1 and wrong.stderr.startswith("error: a base replica is already running")
        bad = trader("price", "--venue", "v3", home=base_home, ok=False)
        assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and "not on base" in bad.stderr
        assert trader("chain", "up", "--network", "solana", home=base_home, ok=False).stderr.startswith(
            "error: unknown network 'solana'")
    finally:
        trader("chain", "down", home=base_home)


@pytest.mark.slow
def test_fork_path_checks_the_network_and_forks_base(chain, base_chain, tmp_path, monkeypatch):
    """The `--network base --fork-url` code path, offline: forking the local replicas instead of a real node."""
    from onchain.manage import start_chain, stop_chain
    from onchain.venues.v2_v3 import get_price

    monkeypatch.setenv("TRADER_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="expects chain id 8453.*serves chain id 1"):
        start_chain(fork_url=chain.rpc_url, network="base")
    assert C.read_state() is None
    try:
        info = start_chain(fork_url=base_chain.rpc_url, network="base")
        assert (info.mode, info.network, info.chain_id) == ("fork", "base", 8453)
        forked = C.connect()
        assert get_price(forked).price == pytest.approx(get_price(base_chain).price, rel=1e-12)
        assert get_quote(forked, "sell", 1.0).amount_out_raw == get_quote(base_chain, "sell", 1.0).amount_out_raw
    finally:
        stop_chain()


def test_replay_follows_the_real_v4_swap_path_with_real_spacing(base_chain):
    from onchain.market.v4_replay import WEEK, load_swaps, replay_swaps
    from trader_core.market_data import load_candles

    steps = 40
    rows = load_swaps()[-steps:]
    result = replay_swaps(base_chain, steps=steps)
    assert result.swaps + result.skipped == steps and result.skipped <= 2  # moves too small to pay out a unit
    assert result.end_price == pytest.approx(v4.price_from_sqrt(rows[-1].sqrt_price_x96), rel=1e-9)
    assert result.max_error_bps < 1e-3
    assert result.time_offset_s % WEEK == 0
    events = [e for e in recent_swaps(base_chain, blocks=steps + 5) if e.timestamp >= result.first_timestamp]
    assert len(events) == result.swaps
    # walk the recorded swaps in order: each on-chain swap is the next recorded one (bar the skipped), mined at
    # its recorded time and leaving the pool at its recorded price
    pending = iter(rows)
    for e in events:
        r = next(pending)
        while not (e.timestamp == r.timestamp + result.time_offset_s and
                   e.price == pytest.approx(v4.price_from_sqrt(r.sqrt_price_x96), rel=1e-9)):
            r = next(pending)
    # the agent's candles from the chain have the real candles' shape (same closes, shifted in time)
    real = load_candles("univ4-base-eth-swaps", interval="5m")
    live = swaps_to_candles(events, "5m")
    shifted = {int(t) + result.time_offset_s: c for t, c in zip(real.timestamps, real.close)}
    for t, c in zip(live.timestamps, live.close):
        assert c == pytest.approx(shifted[int(t)], rel=1e-9)


def test_mainnet_and_base_rows_never_share_journal_identity(chain, base_chain, tmp_path):
    from onchain.execution.journal import Journal
    from onchain.manage import fund
    from onchain.execution.reconcile import reconcile
    from onchain.execution.swap import execute_swap, propose_swap

    journal = Journal(tmp_path / "journal.sqlite")
    trader_address = C.dev_account(0).address
    for c in (chain, base_chain):
        fund(c, trader_address, eth=50.0, usdc=10_000.0)
    on_mainnet = execute_swap(chain, propose_swap(chain, "sell", 0.2, "ETH", journal=journal), journal)
    on_base = execute_swap(base_chain, propose_swap(base_chain, "sell", 0.2, "ETH", journal=journal), journal)
    rows = {r["id"]: r for r in journal.list_trades()}
    assert (rows[on_mainnet.id]["chain_id"], rows[on_mainnet.id]["venue"]) == (1, "v2")
    assert (rows[on_base.id]["chain_id"], rows[on_base.id]["venue"]) == (8453, "v4")
    assert rows[on_mainnet.id]["node_id"] == chain.node_id != base_chain.node_id == rows[on_base.id]["node_id"]
    # the daily-loss kill switch marks one node's swaps only
    assert [r["id"] for r in journal.flows_today(trader_address, base_chain.node_id)] == [on_base.id]
    assert [r["id"] for r in journal.flows_today(trader_address, chain.node_id)] == [on_mainnet.id]
    # reconciliation is per node: a pending mainnet row is not settled against Base
    journal.update(on_mainnet.id, status="pending")
    assert reconcile(base_chain, journal) == []
    assert journal.get(on_mainnet.id)["status"] == "pending"
    assert [r["id"] for r in reconcile(chain, journal)] == [on_mainnet.id]
    assert journal.get(on_mainnet.id)["status"] == "confirmed"
    journal.close()


def test_a_mainnet_state_saved_before_the_periphery_gets_it_on_restore(chain_home, tmp_path, monkeypatch, capsys):
    """REPLICA_VERSION 3 added the periphery; a replica saved by version 2 keeps its balances and gains it."""
    from onchain.manage import fund, start_chain, stop_chain
    from tests.onchain.conftest import seeded_home

    monkeypatch.setenv("TRADER_HOME", str(seeded_home(chain_home, tmp_path / "old")))
    start_chain(detach=False)
    try:
        old = C.connect()
        for address in MAINNET.contracts.values():  # what a version-2 save looks like: no periphery accounts
            old.rpc("anvil_setCode", address, "0x")
            old.rpc("anvil_setNonce", address, "0x0")
        fund(old, C.dev_account(0).address, eth=7.5)
        C.checkpoint(old)
        stop_chain()
        info = start_chain(detach=False)
        assert info.restored_block is not None
        assert "the saved replica predates QuoterV1" in capsys.readouterr().err
        new = C.connect()
        for name, address in MAINNET.contracts.items():
            assert len(new.rpc("eth_getCode", address, "latest")) > 100, name
        assert int(new.rpc("eth_getBalance", C.dev_account(0).address, "latest"), 16) == int(7.5e18)
        assert get_quote(new, "sell", 1.0).amount_out > 0
    finally:
        stop_chain()
