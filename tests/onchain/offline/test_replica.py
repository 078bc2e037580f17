"""The offline mainnet replica: real bytecode at the canonical addresses, seeded at the requested price."""

from __future__ import annotations

import pytest
from eth_utils import to_checksum_address

from onchain.node import chain as C
from onchain.offline.mainnet import CANONICAL
from onchain.node.rpc import calldata, decode, mapping_slot

pytestmark = pytest.mark.chain


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_code_at_every_canonical_address(chain, name):
    code = chain.rpc("eth_getCode", CANONICAL[name], "latest")
    assert len(code) > 1000, f"{name} has no code at {CANONICAL[name]}"


def test_chain_is_mainnet_replica(chain):
    assert chain.chain_id == 1
    assert chain.local and chain.mode == "replica"


def test_pair_and_pool_at_canonical_addresses(chain):
    pair = decode(["address"], chain.call(C.V2_FACTORY, calldata("getPair(address,address)", C.WETH, C.USDC)))[0]
    pool = decode(["address"], chain.call(C.V3_FACTORY, calldata("getPool(address,address,uint24)",
                                                                  C.WETH, C.USDC, 500)))[0]
    pair, pool = to_checksum_address(pair), to_checksum_address(pool)
    assert pair == "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc"
    assert pool == "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
    for addr in (pair, pool):
        t0 = decode(["address"], chain.call(addr, calldata("token0()")))[0]
        t1 = decode(["address"], chain.call(addr, calldata("token1()")))[0]
        assert (to_checksum_address(t0), to_checksum_address(t1)) == (C.USDC, C.WETH)
    # the routers were constructed for real against the canonical factory and WETH
    assert decode(["address"], chain.call(C.V2_ROUTER, calldata("factory()")))[0] == C.V2_FACTORY.lower()
    assert decode(["address"], chain.call(C.V3_ROUTER, calldata("WETH9()")))[0] == C.WETH.lower()


def test_usdc_has_mainnet_layout(chain):
    assert decode(["uint8"], chain.call(C.USDC, calldata("decimals()")))[0] == 6
    assert decode(["string"], chain.call(C.USDC, calldata("symbol()")))[0] == "USDC"
    holder = "0x000000000000000000000000000000000000bEEF"
    chain.rpc("anvil_setStorageAt", C.USDC, mapping_slot(holder, 9), "0x" + (1234567).to_bytes(32, "big").hex())
    assert decode(["uint256"], chain.call(C.USDC, calldata("balanceOf(address)", holder)))[0] == 1234567


def test_fresh_replica_price_equals_seed_and_restart_loads_the_dump(chain_home):
    from onchain.offline.build import PrivateReplica, replica_cache
    from onchain.venues.v2_v3 import get_price

    with PrivateReplica(price=1234.5) as fresh:
        assert get_price(fresh, "v2").price == pytest.approx(1234.5, rel=1e-9)
        assert get_price(fresh, "v3").price == pytest.approx(1234.5, rel=1e-9)
    assert replica_cache(1234.5).exists()
    with PrivateReplica(price=1234.5) as again:  # loaded from the dump, not rebuilt
        assert int(again.rpc("eth_blockNumber"), 16) > 0
        assert get_price(again, "v3").price == pytest.approx(1234.5, rel=1e-9)


def test_session_chain_seeded_from_latest_candle(chain_home):
    from onchain.node.chain import read_state
    from trader_core.market_data import load_candles

    assert read_state().price == pytest.approx(float(load_candles().close[-1]))
