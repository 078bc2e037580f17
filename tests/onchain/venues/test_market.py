"""Prices, quotes (vs constant-product maths and QuoterV2), swaps that move balances exactly by the quote."""

from __future__ import annotations

import math

import pytest

from onchain.node import chain as C
from onchain.node.rpc import calldata, decode
from onchain.execution.swap import execute_swap, propose_swap
from onchain.venues.v2_v3 import get_pool, get_portfolio, get_quote, recent_swaps, swaps_to_candles, v2_amount_out

pytestmark = pytest.mark.chain


@pytest.mark.parametrize("side,amount,asset", [("sell", 1.5, "ETH"), ("buy", 2500.0, "USDC")])
def test_v2_quote_matches_constant_product(chain, side, amount, asset):
    r_usdc, r_weth, _ = decode(["uint112", "uint112", "uint32"], chain.call(C.V2_PAIR, calldata("getReserves()")))
    q = get_quote(chain, side, amount, asset, "v2")
    if side == "sell":
        expected = v2_amount_out(int(amount * 10**18), r_weth, r_usdc)
        # independent float maths of x*y=k with the 0.3% fee
        dx = amount * 0.997
        assert q.amount_out == pytest.approx((r_usdc / 1e6) * dx / (r_weth / 1e18 + dx), rel=1e-9)
    else:
        expected = v2_amount_out(int(amount * 10**6), r_usdc, r_weth)
    assert q.amount_out_raw == expected
    assert 0 <= q.price_impact_bps < 50


@pytest.mark.parametrize("side,amount,asset", [("sell", 2.0, "ETH"), ("buy", 4000.0, "USDC")])
def test_v3_quote_matches_quoter_and_full_range_maths(chain, side, amount, asset):
    q = get_quote(chain, side, amount, asset, "v3")
    token_in, token_out = (C.WETH, C.USDC) if side == "sell" else (C.USDC, C.WETH)
    raw = decode(["uint256", "uint160", "uint32", "uint256"], chain.call(C.V3_QUOTER, calldata(
        "quoteExactInputSingle((address,address,uint256,uint24,uint160))",
        (token_in, token_out, q.amount_in_raw, 500, 0))))[0]
    assert q.amount_out_raw == raw
    pool = get_pool(chain, "v3")
    s = math.sqrt(1e12 / pool.price)  # sqrt(WETH wei per USDC unit)
    L, dx = pool.liquidity, q.amount_in_raw * (1 - 0.0005)
    if side == "sell":  # WETH (token1) in
        out = L * (1 / s - 1 / (s + dx / L))
    else:  # USDC (token0) in
        out = L * (s - 1 / (1 / s + dx / L))
    assert q.amount_out_raw == pytest.approx(out, rel=1e-6)


def test_price_impact_grows_with_size(chain):
    small, big = get_quote(chain, "sell", 0.1, "ETH", "v2"), get_quote(chain, "sell", 200, "ETH", "v2")
    assert big.price_impact_bps > 10 * small.price_impact_bps
    assert big.price < small.price


@pytest.mark.parametrize("venue", ["v2", "v3"])
@pytest.mark.parametrize("side,amount,asset", [("sell", 0.7, "ETH"), ("buy", 1500.0, "USDC")])
def test_swap_changes_balances_exactly_by_the_quote(chain, trader, journal, venue, side, amount, asset):
    before = get_portfolio(chain, trader)
    eth_before = int(chain.rpc("eth_getBalance", trader, "latest"), 16)
    proposal = propose_swap(chain, side, amount, asset, venue, journal=journal)
    assert proposal.risk.ok, proposal.risk.reasons
    receipt = execute_swap(chain, proposal, journal)
    after = get_portfolio(chain, trader)
    q = proposal.quote
    tx = chain.rpc("eth_getTransactionReceipt", receipt.tx_hash)
    gas_wei = int(tx["gasUsed"], 16) * int(tx["effectiveGasPrice"], 16)
    if proposal.needs_approval:  # the exact-amount approve() tx also paid gas
        approve = chain.rpc("eth_getBlockByNumber", hex(receipt.block - 1), True)["transactions"][0]
        gas_wei += int(chain.rpc("eth_getTransactionReceipt", approve["hash"])["gasUsed"], 16) * int(
            approve["gasPrice"], 16)
    d_eth_wei = int(chain.rpc("eth_getBalance", trader, "latest"), 16) - eth_before
    d_usdc = round(after.usdc * 1e6) - round(before.usdc * 1e6)
    if side == "sell":
        assert d_usdc == q.amount_out_raw
        assert d_eth_wei == -(q.amount_in_raw + gas_wei)
    else:
        assert d_usdc == -q.amount_in_raw
        assert d_eth_wei == q.amount_out_raw - gas_wei
    assert receipt.amount_out == pytest.approx(q.amount_out, rel=1e-12)
    assert journal.get(proposal.id)["status"] == "confirmed"
    assert after.weth == before.weth  # routers wrapped/unwrapped: no stray WETH
    # allowance left at zero: exact-amount approvals only
    router = C.V2_ROUTER if venue == "v2" else C.V3_ROUTER
    assert decode(["uint256"], chain.call(C.USDC, calldata("allowance(address,address)", trader, router)))[0] == 0


def test_buy_exact_eth_amount_receives_at_least_it(chain, trader, journal):
    receipt = execute_swap(chain, propose_swap(chain, "buy", 0.25, "ETH", "v3", journal=journal), journal)
    assert 0.25 <= receipt.amount_out < 0.25 * 1.0001


def test_replay_moves_pools_along_history_with_swap_events(chain):
    from onchain.market.replay import replay
    from trader_core.market_data import load_candles

    closes = load_candles("univ3-polygon-eth-1h").close
    n_before = len(recent_swaps(chain, "v3"))
    result = replay(chain, data="univ3-polygon-eth-1h", steps=12)
    assert result.target_end == pytest.approx(float(closes[-1]))
    assert result.max_error_bps < 1.0
    events = recent_swaps(chain, "v3")
    assert len(events) >= n_before + 10
    candles = swaps_to_candles(events, "1s")
    assert candles.close[-1] == pytest.approx(result.end_price_v3, rel=1e-6)
    v2_events = recent_swaps(chain, "v2")
    assert v2_events[-1].price == pytest.approx(result.end_price_v2, rel=1e-9)
