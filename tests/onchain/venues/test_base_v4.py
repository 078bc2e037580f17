"""The offline Base replica and the V4 venue, checked independently: code at every canonical address, the pool id
from its key, slot0 vs `trader price --venue v4`, V4Quoter vs local tick maths, swaps whose `to` is the
Universal Router, min-out and deadline reverts caught in simulation, Permit2 allowance expiry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak

from onchain.venues import v4
from onchain.venues import v4_swap
from onchain.offline.base import latest_swap
from onchain.venues.v4_swap import permit2_allow
from onchain.node.chain import dev_account
from onchain.manage import fund
from onchain.networks import (BASE, BASE_UNIVERSAL_ROUTER, BASE_USDC, BASE_V4_QUOTER, NATIVE, PERMIT2,
                              V4_POOL_ID)
from onchain.node.transactions import send_as
from onchain.node.rpc import RpcError, calldata, decode, mapping_slot
from onchain.execution.swap import execute_swap, propose_swap
from onchain.venues.v2_v3 import get_pool, get_portfolio, get_price, get_quote
from tests.conftest import HANG_S
from tests.onchain.conftest import nonce
from trader_core.errors import SwapRefused, TransactionFailed

pytestmark = pytest.mark.chain


@pytest.fixture
def base_trader(base_chain):
    address = dev_account(0).address
    fund(base_chain, address, eth=100.0, usdc=100_000.0)
    return address


def _usdc(chain, who) -> int:
    return decode(["uint256"], chain.call(BASE_USDC, calldata("balanceOf(address)", who)))[0]


def _whale_swap(chain, zero_for_one: bool, amount_in: int | None = None, to_sqrt: int | None = None) -> None:
    """Another trader (dev account 1) moves the pool through the Universal Router (by an amount, or to a price)."""
    whale = dev_account(1).address
    fund(chain, whale, eth=10**6, usdc=10**9)
    permit2_allow(chain, whale, BASE_UNIVERSAL_ROUTER)
    sqrt_p, _, liquidity = v4.read_pool(chain)
    if to_sqrt is not None:
        zero_for_one, amount_in = v4.input_to_reach(sqrt_p, to_sqrt, liquidity)
    out, _ = v4.swap_exact_in(sqrt_p, liquidity, amount_in, zero_for_one)
    data = v4_swap.swap_call(zero_for_one, amount_in, out * 99 // 100, chain.block_timestamp() + 600)
    send_as(chain, whale, BASE_UNIVERSAL_ROUTER, data, value=amount_in if zero_for_one else 0, gas=600_000)


@pytest.mark.parametrize("name", sorted(BASE.contracts))
def test_code_at_every_canonical_base_address(base_chain, name):
    code = base_chain.rpc("eth_getCode", BASE.contracts[name], "latest")
    assert len(code) > 2000, f"{name} has no code at {BASE.contracts[name]}"


def test_base_replica_identity_and_periphery_wiring(base_chain):
    assert base_chain.chain_id == 8453 and base_chain.local
    # the periphery was constructed for real against the canonical PoolManager / Permit2 / WETH
    pm = BASE.contracts["PoolManager"].lower()
    for name in ("StateView", "V4Quoter", "PositionManager"):
        assert decode(["address"], base_chain.call(BASE.contracts[name], calldata("poolManager()")))[0] == pm
    posm = BASE.contracts["PositionManager"]
    assert decode(["address"], base_chain.call(posm, calldata("permit2()")))[0] == PERMIT2.lower()
    assert decode(["address"], base_chain.call(posm, calldata("WETH9()")))[0] == BASE.weth.lower()
    # immutables that capture address(this) came out for the canonical address: PositionManager's EIP-712 domain
    domain = keccak(abi_encode(["bytes32", "bytes32", "uint256", "address"], [
        keccak(text="EIP712Domain(string name,uint256 chainId,address verifyingContract)"),
        keccak(text="Uniswap v4 Positions NFT"), 8453, posm]))
    assert base_chain.call(posm, calldata("DOMAIN_SEPARATOR()")) == "0x" + domain.hex()
    # Permit2 on chain 8453 builds its domain from block.chainid and its own (canonical) address
    p2_domain = keccak(abi_encode(["bytes32", "bytes32", "uint256", "address"], [
        keccak(text="EIP712Domain(string name,uint256 chainId,address verifyingContract)"),
        keccak(text="Permit2"), 8453, PERMIT2]))
    assert base_chain.call(PERMIT2, calldata("DOMAIN_SEPARATOR()")) == "0x" + p2_domain.hex()
    # USDC keeps Base USDC's layout: balances at slot 9
    holder = "0x000000000000000000000000000000000000bEEF"
    base_chain.rpc("anvil_setStorageAt", BASE_USDC, mapping_slot(holder, 9), "0x" + (4242).to_bytes(32, "big").hex())
    assert _usdc(base_chain, holder) == 4242
    assert decode(["string"], base_chain.call(BASE_USDC, calldata("symbol()")))[0] == "USDC"


def test_pool_id_is_keccak_of_the_pool_key(base_chain):
    key = (NATIVE, BASE_USDC, 500, 10, NATIVE)
    assert v4.pool_id(key) == V4_POOL_ID == "0x96d4b53a38337a5733179751781178a2613306063c511b78cd02684739288c0a"
    assert "0x" + v4_swap.codec().encode.v4_pool_id(v4_swap.pool_key()).hex() == V4_POOL_ID  # the library agrees
    def sqrt_price(pool: str) -> int:
        raw = base_chain.call(BASE.contracts["StateView"], calldata("getSlot0(bytes32)", bytes.fromhex(pool[2:])))
        return decode(["uint160"], raw[:66])[0]

    assert sqrt_price(V4_POOL_ID) > 0
    assert sqrt_price(v4.pool_id((NATIVE, BASE_USDC, 3000, 60, NATIVE))) == 0  # a pool nobody initialised


def test_pool_seeded_at_the_data_latest_swap_and_price_cli_agrees(base_chain, base_home, monkeypatch, tmp_path):
    from onchain.manage import PrivateReplica

    seed = latest_swap()
    monkeypatch.setenv("TRADER_HOME", str(base_home))
    with PrivateReplica(network="base") as fresh:  # a fresh replica from the session's cached build
        sv = BASE.contracts["StateView"]
        raw = fresh.call(sv, calldata("getSlot0(bytes32)", bytes.fromhex(V4_POOL_ID[2:])))
        sqrt_p, tick, _, lp_fee = decode(["uint160", "int24", "uint24", "uint24"], raw)
        liquidity = decode(["uint128"], fresh.call(sv, calldata("getLiquidity(bytes32)",
                                                                 bytes.fromhex(V4_POOL_ID[2:]))))[0]
        assert (sqrt_p, liquidity) == (seed.sqrt_price_x96, seed.liquidity)
        assert lp_fee == 500 and tick == -196856
        expected = (sqrt_p / 2**96) ** 2 * 1e12  # ETH is currency0 (18 dp), USDC currency1 (6 dp)
        proc = subprocess.run([sys.executable, "-c", "from agent.cli import main; main()", "price", "--venue", "v4",
                               "--rpc-url", fresh.rpc_url, "--json"], capture_output=True, text=True, timeout=HANG_S,
                              env={**os.environ, "TRADER_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out == {"venue": "v4", "price": pytest.approx(expected, rel=1e-12)}
    assert out["price"] == pytest.approx(seed.price, rel=1e-12) and 2000 < out["price"] < 4000
    assert get_price(base_chain).venue == "v4"  # v4 is Base's default venue


@pytest.mark.parametrize("side,amount,asset", [("sell", 1.5, "ETH"), ("buy", 2500.0, "USDC"), ("buy", 0.4, "ETH")])
def test_v4_quotes_match_local_tick_maths(base_chain, side, amount, asset):
    q = get_quote(base_chain, side, amount, asset, "v4")
    pool = get_pool(base_chain, "v4")
    sqrt_p = decode(["uint160"], base_chain.call(BASE.contracts["StateView"], calldata(
        "getSlot0(bytes32)", bytes.fromhex(V4_POOL_ID[2:])))[:66])[0]
    zero_for_one = side == "sell"
    if asset == q.asset_out:  # exact output: the quoter's input equals the local exact-out maths
        amount_in, _ = v4.swap_exact_out(sqrt_p, pool.liquidity, int(round(amount * 1e18)), zero_for_one)
        assert q.amount_in_raw == amount_in
    out, _ = v4.swap_exact_in(sqrt_p, pool.liquidity, q.amount_in_raw, zero_for_one)
    assert q.amount_out_raw == out
    # and the V4Quoter itself, called directly, says the same
    quoted = decode(["uint256", "uint256"], base_chain.call(BASE_V4_QUOTER, calldata(
        "quoteExactInputSingle(((address,address,uint24,int24,address),bool,uint128,bytes))",
        (v4.POOL_KEY, zero_for_one, q.amount_in_raw, b""))))[0]
    assert quoted == out
    # an independent float check of x*y=k within the range: out ~ L * d(sqrtP) with the 0.05% fee
    s, dx = sqrt_p / 2**96, q.amount_in_raw * (1 - 0.0005)
    approx = pool.liquidity * (s - 1 / (1 / s + dx / pool.liquidity)) if zero_for_one else \
        pool.liquidity * (1 / s - 1 / (s + dx / pool.liquidity))
    assert out == pytest.approx(approx, rel=1e-6)
    assert q.fee_bps == 5 and q.venue == "v4" and 0 <= q.price_impact_bps < 10


@pytest.mark.parametrize("side,amount,asset", [("sell", 0.7, "ETH"), ("buy", 1500.0, "USDC")])
def test_v4_swap_goes_to_the_universal_router_and_moves_balances_by_the_quote(base_chain, base_trader, journal,
                                                                             side, amount, asset):
    eth0, usdc0 = int(base_chain.rpc("eth_getBalance", base_trader, "latest"), 16), _usdc(base_chain, base_trader)
    proposal = propose_swap(base_chain, side, amount, asset, journal=journal)  # v4: Base's default venue
    assert proposal.risk.ok, proposal.risk.reasons
    assert proposal.quote.venue == "v4" and proposal.to == BASE_UNIVERSAL_ROUTER
    assert 0 < proposal.min_amount_out_raw < proposal.quote.amount_out_raw
    receipt = execute_swap(base_chain, proposal, journal)
    tx = base_chain.rpc("eth_getTransactionByHash", receipt.tx_hash)
    assert tx["to"].lower() == BASE_UNIVERSAL_ROUTER.lower()
    sent = v4_swap.read_swap(tx["input"])  # the calldata, read the way the deployed router reads it
    assert sent["pool_key"][0] == NATIVE and sent["pool_key"][1].lower() == BASE_USDC.lower()
    assert sent["amount_in"] == proposal.quote.amount_in_raw
    assert sent["amount_out_minimum"] == sent["take_all"][1] == proposal.min_amount_out_raw
    assert sent["actions"] == bytes([0x06, 0x0C, 0x0F]) and sent["deadline"] == proposal.deadline
    gas = 0
    for block in range(receipt.block - (1 if proposal.needs_approval else 0), receipt.block + 1):
        for t in base_chain.rpc("eth_getBlockByNumber", hex(block), True)["transactions"]:
            r = base_chain.rpc("eth_getTransactionReceipt", t["hash"])
            gas += int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16)
    d_eth = int(base_chain.rpc("eth_getBalance", base_trader, "latest"), 16) - eth0
    d_usdc = _usdc(base_chain, base_trader) - usdc0
    q = proposal.quote
    if side == "sell":  # native ETH in as msg.value: no wrapping, no WETH left behind
        assert int(tx["value"], 16) == q.amount_in_raw and sent["commands"] == bytes([0x10])
        assert d_usdc == q.amount_out_raw and d_eth == -(q.amount_in_raw + gas)
    else:  # USDC in through a Permit2 permit in the same call
        assert int(tx["value"], 16) == 0 and sent["commands"] == bytes([0x0A, 0x10])
        assert d_usdc == -q.amount_in_raw and d_eth == q.amount_out_raw - gas
    assert get_portfolio(base_chain, base_trader).weth == 0
    # the real PoolManager's Swap event carries the swapper's deltas (negative = paid in), as the bundled data do
    logs = base_chain.rpc("eth_getTransactionReceipt", receipt.tx_hash)["logs"]
    a0, a1 = next(v4.decode_swap_log(g) for g in logs if g["topics"][0] == v4.SWAP_TOPIC)[:2]
    assert (a0, a1) == ((-q.amount_in_raw, q.amount_out_raw) if side == "sell" else (q.amount_out_raw, -q.amount_in_raw))
    assert receipt.amount_out == pytest.approx(q.amount_out, rel=1e-12)
    row = journal.get(proposal.id)
    assert row["status"] == "confirmed" and row["venue"] == "v4" and row["chain_id"] == 8453


def test_swap_below_min_out_reverts_in_simulation_and_sends_nothing(base_chain, base_trader, journal):
    proposal = propose_swap(base_chain, "sell", 1.0, "ETH", "v4", max_slippage_bps=10, journal=journal)
    before = v4.read_pool(base_chain)[0]
    _whale_swap(base_chain, True, 300 * 10**18)  # the price falls between proposal and execution
    n0 = nonce(base_chain, base_trader)
    with pytest.raises(TransactionFailed, match="nothing sent") as err:
        execute_swap(base_chain, proposal, journal)
    assert "V4TooLittleReceived" in str(err.value) and "slippage" in str(err.value)
    assert nonce(base_chain, base_trader) == n0
    row = journal.get(proposal.id)
    assert row["status"] == "failed" and row["tx_hash"] is None
    _whale_swap(base_chain, False, to_sqrt=before)  # and back, for the next tests
    assert v4.read_pool(base_chain)[0] == pytest.approx(before, rel=1e-9)  # one USDC unit moves it ~4e-13


def test_deadline_passed_is_caught_before_sending(base_chain, base_trader, journal):
    proposal = propose_swap(base_chain, "buy", 300, "USDC", "v4", deadline_s=5, journal=journal)
    base_chain.rpc("evm_increaseTime", 60)
    base_chain.rpc("evm_mine")
    n0 = nonce(base_chain, base_trader)
    with pytest.raises(TransactionFailed, match="deadline passed"):
        execute_swap(base_chain, proposal, journal)
    assert nonce(base_chain, base_trader) == n0 and journal.get(proposal.id)["status"] == "failed"


def test_permit2_allowance_expiry_is_respected(base_chain, base_trader, journal):
    # our swaps sign a permit for exactly the input, expiring at the swap's deadline, and use it up
    p = propose_swap(base_chain, "buy", 400, "USDC", "v4", journal=journal)
    execute_swap(base_chain, p, journal)
    amount, expiration, nonce_after = v4_swap.decode_permit2_allowance(
        base_chain.rpc.batch([v4_swap.permit2_allowance_call(base_trader)])[0])
    assert (amount, expiration) == (0, p.deadline) and nonce_after >= 1
    # an allowance with an expiry (Permit2.approve) works until then and is refused after, by the real Permit2
    now = base_chain.block_timestamp()
    send_as(base_chain, base_trader, PERMIT2, calldata("approve(address,address,uint160,uint48)", BASE_USDC,
                                                       BASE_UNIVERSAL_ROUTER, 500 * 10**6, now + 30))
    call = {"from": base_trader, "to": BASE_UNIVERSAL_ROUTER,
            "data": v4_swap.swap_call(False, 200 * 10**6, 1, now + 86_400)}
    base_chain.rpc("eth_call", call, "latest")  # within the expiry: fine
    base_chain.rpc("evm_increaseTime", 120)
    base_chain.rpc("evm_mine")
    with pytest.raises(RpcError) as err:
        base_chain.rpc("eth_call", call, "latest")
    assert err.value.revert_reason.startswith("AllowanceExpired(")
    send_as(base_chain, base_trader, PERMIT2, calldata("approve(address,address,uint160,uint48)", BASE_USDC,
                                                       BASE_UNIVERSAL_ROUTER, 0, 0))


def test_venues_are_checked_against_the_network(base_chain, base_trader, journal, chain):
    n0 = nonce(base_chain, base_trader)
    for venue in ("v2", "v3"):
        with pytest.raises(SwapRefused, match="not on base.*use v4"):
            propose_swap(base_chain, "sell", 0.1, "ETH", venue, journal=journal)
    with pytest.raises(SwapRefused, match="v4 is not on mainnet.*--network base"):
        get_price(chain, "v4")
    assert nonce(base_chain, base_trader) == n0 and journal.list_trades() == []


def test_tiny_order_whose_min_out_rounds_to_zero_is_refused(base_chain, base_trader, journal):
    with pytest.raises(SwapRefused, match="rounds to 0"):
        propose_swap(base_chain, "sell", 1e-12, "ETH", "v4", journal=journal)
    assert journal.list_trades() == []


def test_library_bytes_need_the_deployed_layout():
    """Why onchain.venues.v4_swap re-encodes one struct: the library (3.x) writes UR 2.1.1's layout; the deployed router
    (v4-periphery 1.0) reads a different one, and a strict ABI decoder rejects the library's bytes for it."""
    from eth_abi.exceptions import DecodingError

    lib = (v4_swap.codec().encode.chain().v4_swap()
           .swap_exact_in_single(v4_swap.pool_key(), True, 10**18, 5, hook_data=b"", min_hop_price_x36=0)
           .settle_all(NATIVE, 10**18).take_all(BASE_USDC, 5).build_v4_swap().build(2**40))
    commands, inputs, _ = abi_decode(["bytes", "bytes[]", "uint256"], bytes.fromhex(lib[10:]))
    params = abi_decode(["bytes", "bytes[]"], inputs[0])[1]
    with pytest.raises(DecodingError):
        abi_decode([v4_swap.DEPLOYED_EXACT_IN_SINGLE], params[0])
    ours = v4_swap.read_swap(v4_swap.for_deployed_router(lib))
    assert (ours["zero_for_one"], ours["amount_in"], ours["amount_out_minimum"], ours["hook_data"]) == \
        (True, 10**18, 5, b"")
    with pytest.raises(Exception, match="amountOutMinimum 0"):
        v4_swap.swap_call(True, 10**18, 0, 2**40)


def test_the_live_candle_feed_reads_the_v4_pool_on_base(base_chain):
    """The agent's feed takes the network's own pool by default (Base has no v2 pair: asking it was an error)."""
    from onchain.market.feed import ChainFeed

    _whale_swap(base_chain, zero_for_one=True, amount_in=10**18)  # a real swap through the Universal Router
    feed = ChainFeed(base_chain)
    snap = feed.read()
    assert feed.venue == "v4" and "chain v4 swaps" in snap.source and snap.live_bars >= 1
    assert snap.price == pytest.approx(get_price(base_chain).price, rel=1e-9)
    with pytest.raises(SwapRefused, match="venue v2 is not on base"):
        ChainFeed(base_chain, venue="v2")
