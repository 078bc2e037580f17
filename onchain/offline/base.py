"""The offline Base replica: real Uniswap V4 bytecode at Base's canonical addresses, chain id 8453.

Contracts come from the pinned npm packages (v4-core PoolManager; v4-periphery PositionManager, StateView,
V4Quoter and Permit2; universal-router; canonical-weth; viem's Multicall3) with their real constructor
arguments; USDC is the replica token with Base USDC's storage layout (balances at slot 9), so funding by slot
write works as on a fork. The seed's pool (native ETH / USDC, 0.05%, tick spacing 10) is initialised at the
bundled V4 data's latest sqrtPriceX96 and given a full-range position through the real PositionManager with the
real pool's in-range liquidity at that swap, so small trades see the real pool's price impact. Like the mainnet
replica, the seed state carries a random identity (onchain.offline.mainnet.mark_identity) and is cached under
onchain.offline.mainnet.REPLICA_VERSION.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode as abi_encode

from onchain.node import chain as C
from onchain.venues import v4
from onchain.node.artifacts import load_artifact
from onchain.networks import (BASE, BASE_CHAIN_ID, BASE_POOL_MANAGER, BASE_POSITION_MANAGER, BASE_STATE_VIEW,
                              BASE_UNIVERSAL_ROUTER, BASE_USDC, BASE_V2_FACTORY, BASE_V3_FACTORY, BASE_V3_NPM,
                              BASE_V4_QUOTER, BASE_WETH, NATIVE, PERMIT2, V4_DATASET)
from onchain.offline.periphery import (PLACER, construct_at, creation_code, deploy_multicall3, etch_permit2,
                               universal_router_code)
from onchain.offline.mainnet import mark_identity
from onchain.node.transactions import send_as
from onchain.venues.v4_swap import permit2_allow
from onchain.node.rpc import calldata
from trader_core.errors import ChainError, DataError

USDC_MINTER = PLACER  # the replica token's masterMinter (it ran the constructor)
POSM_UNSUBSCRIBE_GAS = 300_000  # PositionManager's unsubscribe gas limit, as Uniswap's deploy script sets it
# v4-periphery Actions
MINT_POSITION, SETTLE_PAIR, SWEEP = 0x02, 0x0D, 0x14


@dataclass(frozen=True)
class PoolSeed:
    """Where the replica's pool starts: the latest swap of the bundled V4 data (or a chosen price)."""

    sqrt_price_x96: int
    liquidity: int
    timestamp: int | None = None

    @property
    def price(self) -> float:
        return v4.price_from_sqrt(self.sqrt_price_x96)


def latest_swap(dataset: str | None = None) -> PoolSeed:
    """The last swap (by block, then file order) of a V4 swap-event CSV: its sqrtPriceX96 and liquidity."""
    import pandas as pd

    from trader_core.market_data import resolve_dataset

    path, _ = resolve_dataset(dataset or V4_DATASET)
    try:
        frame = pd.read_csv(path, dtype=str)
        frame.columns = [c.strip().lower() for c in frame.columns]
        frame["_block"] = frame["block_number"].astype(int)
        last = frame.sort_values("_block", kind="stable").iloc[-1]
        return PoolSeed(int(last["sqrt_price_x96"]), int(last["liquidity"]), int(last["timestamp"]))
    except (KeyError, ValueError, IndexError) as exc:
        raise DataError(f"{path}: not a V4 swap-event file with block_number, sqrt_price_x96, liquidity and "
                        f"timestamp columns ({type(exc).__name__}: {exc})") from None


def seed_for(price: float | None = None, dataset: str | None = None) -> PoolSeed:
    """The data's latest swap, re-priced to `price` (USDC per ETH) when one is given."""
    latest = latest_swap(dataset)
    if price is None:
        return latest
    return PoolSeed(v4.sqrt_from_price(price), latest.liquidity, latest.timestamp)


def deploy_base(chain: C.Chain) -> dict[str, str]:
    """Every Base contract at its canonical address (idempotent)."""
    construct_at(chain, BASE_WETH, load_artifact("WETH9")["bytecode"])
    construct_at(chain, BASE_USDC, load_artifact("ReplicaUSDC")["bytecode"], sender=USDC_MINTER)
    etch_permit2(chain)
    deploy_multicall3(chain)
    construct_at(chain, BASE_POOL_MANAGER, creation_code("PoolManager", ["address"], [PLACER]))
    construct_at(chain, BASE_STATE_VIEW, creation_code("StateView", ["address"], [BASE_POOL_MANAGER]))
    construct_at(chain, BASE_V4_QUOTER, creation_code("V4Quoter", ["address"], [BASE_POOL_MANAGER]))
    construct_at(chain, BASE_POSITION_MANAGER, creation_code(
        "PositionManager", ["address", "address", "uint256", "address", "address"],
        [BASE_POOL_MANAGER, PERMIT2, POSM_UNSUBSCRIBE_GAS, NATIVE, BASE_WETH]))
    construct_at(chain, BASE_UNIVERSAL_ROUTER, universal_router_code(
        BASE_WETH, BASE_V2_FACTORY, BASE_V3_FACTORY, BASE_POOL_MANAGER, BASE_V3_NPM, BASE_POSITION_MANAGER))
    return dict(BASE.contracts)


def mint_usdc(chain: C.Chain, to: str, amount_raw: int) -> None:
    chain.rpc("anvil_impersonateAccount", USDC_MINTER)
    try:
        send_as(chain, USDC_MINTER, BASE_USDC, calldata("mint(address,uint256)", to, amount_raw))
    finally:
        chain.rpc("anvil_stopImpersonatingAccount", USDC_MINTER)


def mint_full_range(chain: C.Chain, lp: str, liquidity: int, sqrt_p: int) -> None:
    """A full-range position through the real PositionManager: MINT_POSITION, SETTLE_PAIR, SWEEP leftover ETH."""
    eth_raw, usdc_raw = v4.full_range_amounts(sqrt_p, liquidity)
    eth_max, usdc_max = eth_raw + eth_raw // 100 + 1, usdc_raw + usdc_raw // 100 + 1
    chain.rpc("anvil_setBalance", lp, hex(eth_max + 10**21))
    mint_usdc(chain, lp, usdc_max)
    permit2_allow(chain, lp, BASE_POSITION_MANAGER)
    lower, upper = v4.FULL_RANGE
    mint = abi_encode([v4.POOL_KEY_TYPE, "int24", "int24", "uint256", "uint128", "uint128", "address", "bytes"],
                      [v4.POOL_KEY, lower, upper, liquidity, eth_max, usdc_max, lp, b""])
    settle = abi_encode(["address", "address"], [NATIVE, BASE_USDC])
    sweep = abi_encode(["address", "address"], [NATIVE, lp])
    unlock = abi_encode(["bytes", "bytes[]"], [bytes([MINT_POSITION, SETTLE_PAIR, SWEEP]), [mint, settle, sweep]])
    deadline = chain.block_timestamp() + 3600
    send_as(chain, lp, BASE_POSITION_MANAGER, calldata("modifyLiquidities(bytes,uint256)", unlock, deadline),
            value=eth_max, gas=3_000_000)


def seed_pool(chain: C.Chain, seed: PoolSeed) -> None:
    """Initialise the ETH/USDC pool at the seed's sqrtPriceX96 and add the seed's liquidity from dev account 9."""
    lp = C.dev_account(C.LP_ACCOUNT).address
    send_as(chain, lp, BASE_POOL_MANAGER, calldata(f"initialize({v4.POOL_KEY_TYPE},uint160)", v4.POOL_KEY,
                                                   seed.sqrt_price_x96))
    mint_full_range(chain, lp, seed.liquidity, seed.sqrt_price_x96)
    sqrt_p, _, liquidity = v4.read_pool(chain)
    if sqrt_p != seed.sqrt_price_x96 or liquidity != seed.liquidity:
        raise ChainError(f"the V4 pool came up at sqrtPriceX96 {sqrt_p} / liquidity {liquidity}, expected "
                         f"{seed.sqrt_price_x96} / {seed.liquidity}")


def build_base_replica(chain: C.Chain, seed: PoolSeed) -> dict[str, str]:
    """Deploy everything and seed the pool; idempotent for the contracts, not for liquidity."""
    if chain.chain_id != BASE_CHAIN_ID:
        raise ChainError(f"the Base replica must run with chain id {BASE_CHAIN_ID}, the node reports {chain.chain_id}")
    if not (v4.MIN_SQRT_PRICE < seed.sqrt_price_x96 < v4.MAX_SQRT_PRICE) or seed.liquidity <= 0:
        raise ChainError(f"bad pool seed: sqrtPriceX96 {seed.sqrt_price_x96}, liquidity {seed.liquidity}")
    addresses = deploy_base(chain)
    seed_pool(chain, seed)
    mark_identity(chain)  # as on mainnet: the journal tells this replica's runs apart from any other node's
    return addresses
