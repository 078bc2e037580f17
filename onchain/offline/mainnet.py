"""The offline mainnet replica: real WETH9 / Uniswap V2 / V3 bytecode at the canonical mainnet addresses.

Each contract is deployed by impersonating its real mainnet deployer at its real nonce (found once by
solving address = keccak(rlp(deployer, nonce))), so constructors run for real and the factories' CREATE2
init-code hashes place the WETH/USDC pair and 0.05% pool at their mainnet addresses too.
"""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

from eth_abi import encode as abi_encode

from onchain.node import chain as C
from onchain.node.artifacts import load_artifact
from onchain.node.rpc import calldata, decode
from onchain.node.transactions import send_as
from trader_core.errors import ChainError

REPLICA_VERSION = "3"  # 2: a random identity in the seed state (chain.IDENTITY_ADDRESS); 3: the periphery
# real clients call (onchain.offline.periphery) too. The Base replica's cache (onchain.offline.base) follows this number.
# (artifact, address, real deployer, real nonce, constructor types, constructor args)
DEPLOYMENTS = [
    ("WETH9", C.WETH, "0x4F26FfBe5F04ED43630fdC30A87638d53D0b0876", 446, [], []),
    ("ReplicaUSDC", C.USDC, "0x95Ba4cF87D6723ad9C0Db21737D862bE80e93911", 20, [], []),
    # feeToSetter: the deployer itself (fees stay off, as on mainnet)
    ("UniswapV2Factory", C.V2_FACTORY, "0x9C33eaCc2F50E39940D3AfaF2c7B8246B681A374", 0, ["address"],
     ["0x9C33eaCc2F50E39940D3AfaF2c7B8246B681A374"]),
    ("UniswapV2Router02", C.V2_ROUTER, "0x9C33eaCc2F50E39940D3AfaF2c7B8246B681A374", 3, ["address", "address"],
     [C.V2_FACTORY, C.WETH]),
    ("UniswapV3Factory", C.V3_FACTORY, "0x6C9FC64A53c1b71FB3f9Af64d1ae3A4931A5f4E9", 0, [], []),
    ("SwapRouter", C.V3_ROUTER, "0x6C9FC64A53c1b71FB3f9Af64d1ae3A4931A5f4E9", 4, ["address", "address"],
     [C.V3_FACTORY, C.WETH]),
    # tokenDescriptor: mainnet's descriptor proxy address (tokenURI is not needed for trading)
    ("NonfungiblePositionManager", C.V3_NPM, "0x6C9FC64A53c1b71FB3f9Af64d1ae3A4931A5f4E9", 8,
     ["address", "address", "address"], [C.V3_FACTORY, C.WETH, "0x91ae842A5Ffd8d12023116943e72A606179294f3"]),
    ("QuoterV2", C.V3_QUOTER, "0x6C9FC64A53c1b71FB3f9Af64d1ae3A4931A5f4E9", 13, ["address", "address"],
     [C.V3_FACTORY, C.WETH]),
]
CANONICAL = {name: addr for name, addr, *_ in DEPLOYMENTS} | {"UniswapV2Pair": C.V2_PAIR, "UniswapV3Pool": C.V3_POOL}
# Full-range V3 ticks for tick spacing 10 (the 0.05% tier).
MIN_TICK, MAX_TICK = -887270, 887270


def sqrt_price_x96(price_usdc_per_eth: float) -> int:
    """slot0 price for token0=USDC (6 dp), token1=WETH (18 dp): sqrt(1e12 / P) * 2**96."""
    getcontext().prec = 80
    ratio = Decimal(10) ** 12 / Decimal(repr(price_usdc_per_eth))
    return int(ratio.sqrt() * Decimal(2) ** 96)


def deploy_canonical(chain: C.Chain) -> dict[str, str]:
    for name, address, deployer, nonce, types, args in DEPLOYMENTS:
        if chain.rpc("eth_getCode", address, "latest") not in ("0x", "0x0"):
            continue
        code = load_artifact(name)["bytecode"] + (abi_encode(types, args).hex() if types else "")
        chain.rpc("anvil_impersonateAccount", deployer)
        chain.rpc("anvil_setBalance", deployer, hex(10**20))
        chain.rpc("anvil_setNonce", deployer, hex(nonce))
        receipt = send_as(chain, deployer, None, code, gas=15_000_000, nonce=nonce)
        chain.rpc("anvil_stopImpersonatingAccount", deployer)
        got = receipt.get("contractAddress") or ""
        if got.lower() != address.lower():
            raise ChainError(f"{name} landed at {got}, expected {address}: deployer nonce mismatch")
    return dict(CANONICAL)


def mint_usdc(chain: C.Chain, to: str, amount_raw: int) -> None:
    """Mint through the token's own masterMinter (the replica only; a fork uses `fund`'s slot write)."""
    minter = DEPLOYMENTS[1][2]
    chain.rpc("anvil_impersonateAccount", minter)
    send_as(chain, minter, C.USDC, calldata("mint(address,uint256)", to, amount_raw))
    chain.rpc("anvil_stopImpersonatingAccount", minter)


def seed_liquidity(chain: C.Chain, price: float, eth_per_pool: float = 5_000.0) -> None:
    """Seed the V2 pair and the V3 0.05% pool at `price` USDC/ETH from the LP dev account."""
    lp = C.dev_account(C.LP_ACCOUNT).address
    weth_raw = int(eth_per_pool * 10**18)
    usdc_raw = int(round(eth_per_pool * price * 10**6))
    chain.rpc("anvil_setBalance", lp, hex(10 * weth_raw + 10**21))
    mint_usdc(chain, lp, 2 * usdc_raw)
    send_as(chain, lp, C.WETH, calldata("deposit()"), value=2 * weth_raw)

    # V2: the factory's CREATE2 puts the pair at the mainnet address; transfer + mint is what the router does.
    send_as(chain, lp, C.V2_FACTORY, calldata("createPair(address,address)", C.USDC, C.WETH))
    pair = decode(["address"], chain.call(C.V2_FACTORY, calldata("getPair(address,address)", C.USDC, C.WETH)))[0]
    if pair.lower() != C.V2_PAIR.lower():
        raise ChainError(f"V2 pair landed at {pair}, expected {C.V2_PAIR}")
    send_as(chain, lp, C.USDC, calldata("transfer(address,uint256)", C.V2_PAIR, usdc_raw))
    send_as(chain, lp, C.WETH, calldata("transfer(address,uint256)", C.V2_PAIR, weth_raw))
    send_as(chain, lp, C.V2_PAIR, calldata("mint(address)", lp))

    # V3: create + initialize at the seed price, then a full-range position through the position manager.
    send_as(chain, lp, C.V3_FACTORY, calldata("createPool(address,address,uint24)", C.USDC, C.WETH, C.V3_FEE))
    pool = decode(["address"], chain.call(
        C.V3_FACTORY, calldata("getPool(address,address,uint24)", C.USDC, C.WETH, C.V3_FEE)))[0]
    if pool.lower() != C.V3_POOL.lower():
        raise ChainError(f"V3 pool landed at {pool}, expected {C.V3_POOL}")
    send_as(chain, lp, C.V3_POOL, calldata("initialize(uint160)", sqrt_price_x96(price)))
    send_as(chain, lp, C.USDC, calldata("approve(address,uint256)", C.V3_NPM, usdc_raw))
    send_as(chain, lp, C.WETH, calldata("approve(address,uint256)", C.V3_NPM, weth_raw))
    deadline = chain.block_timestamp() + 3600
    params = (C.USDC, C.WETH, C.V3_FEE, MIN_TICK, MAX_TICK, usdc_raw, weth_raw, 0, 0, lp, deadline)
    send_as(chain, lp, C.V3_NPM, calldata(
        "mint((address,address,uint24,int24,int24,uint256,uint256,uint256,uint256,address,uint256))", params))


def build_replica(chain: C.Chain, price: float) -> dict[str, str]:
    """Deploy everything and seed both pools; idempotent for the contracts, not for liquidity."""
    if not (math.isfinite(price) and price > 0):
        raise ChainError(f"replica seed price must be a positive number, got {price}")
    if chain.chain_id != 1:
        raise ChainError(f"the replica must run with chain id 1, the node reports {chain.chain_id}")
    addresses = deploy_canonical(chain)
    seed_liquidity(chain, price)
    mark_identity(chain)
    return addresses


def mark_identity(chain: C.Chain) -> str:
    """Write a random identity into the new replica's state (kept by every dump/load, unlike block 0's hash):
    replicas grown from this seed state share it, as chains sharing a genesis do."""
    import secrets

    identity = "0x" + secrets.token_hex(32)
    # code and a balance make the account non-empty, so no dump ever prunes it
    chain.rpc("anvil_setCode", C.IDENTITY_ADDRESS, "0xfe")
    chain.rpc("anvil_setBalance", C.IDENTITY_ADDRESS, "0x1")
    chain.rpc("anvil_setStorageAt", C.IDENTITY_ADDRESS, "0x0", identity)
    return identity


def default_seed_price(dataset: str | None = None) -> float:
    """The latest close of the bundled default dataset (or `dataset`)."""
    from trader_core.market_data import DEFAULT_DATASET, load_candles

    candles = load_candles(dataset or DEFAULT_DATASET)
    return float(candles.close[-1])
