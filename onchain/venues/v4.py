"""Uniswap V4 on Base: the native-ETH/USDC pool's key and id, StateView reads, V4Quoter quotes, Swap events,
and the pool's swap maths as pure integer functions (the same rounding as v4-core's SqrtPriceMath/SwapMath),
so quotes can be checked against local tick maths.

currency0 is native ETH (address 0, 18 decimals), currency1 is USDC (6 decimals): the price in USDC per ETH is
(sqrtPriceX96 / 2**96)**2 * 1e12 — the opposite token order from the mainnet V2/V3 pools. zeroForOne = ETH in.
"""

from __future__ import annotations

from eth_abi import encode as abi_encode
from eth_utils import keccak

from onchain.networks import (BASE_POOL_MANAGER, BASE_STATE_VIEW, BASE_USDC, BASE_V4_QUOTER, NATIVE, V4_FEE,
                              V4_TICK_SPACING)
from onchain.node.rpc import calldata, decode

Q96 = 2**96
MAX_FEE_PIPS = 1_000_000
MIN_TICK, MAX_TICK = -887272, 887272
MIN_SQRT_PRICE, MAX_SQRT_PRICE = 4295128739, 1461446703485210103287273052203988599511112347855
# full range for tick spacing 10 (what the replica's position covers)
FULL_RANGE = (-(-MIN_TICK // V4_TICK_SPACING) * V4_TICK_SPACING, MAX_TICK // V4_TICK_SPACING * V4_TICK_SPACING)

POOL_KEY = (NATIVE, BASE_USDC, V4_FEE, V4_TICK_SPACING, NATIVE)  # (currency0, currency1, fee, tickSpacing, hooks)
POOL_KEY_TYPE = "(address,address,uint24,int24,address)"
SWAP_TOPIC = "0x" + keccak(text="Swap(bytes32,address,int128,int128,uint160,uint128,int24,uint24)").hex()
_QUOTE_PARAMS = f"({POOL_KEY_TYPE},bool,uint128,bytes)"
_QUOTE_IN = f"quoteExactInputSingle({_QUOTE_PARAMS})"
_QUOTE_OUT = f"quoteExactOutputSingle({_QUOTE_PARAMS})"


def pool_id(key: tuple = POOL_KEY) -> str:
    """PoolId = keccak256(abi.encode(PoolKey)), as v4-core computes it."""
    return "0x" + keccak(abi_encode([POOL_KEY_TYPE], [key])).hex()


POOL_ID = pool_id()


# --- pure maths (v4-core rounding) ------------------------------------------------------------------------

def _div_up(a: int, b: int) -> int:
    return -(-a // b)


def price_from_sqrt(sqrt_price_x96: int) -> float:
    """USDC per ETH for currency0 = ETH (18 dp), currency1 = USDC (6 dp)."""
    return (sqrt_price_x96 / Q96) ** 2 * 1e12


def sqrt_from_price(price_usdc_per_eth: float) -> int:
    """sqrtPriceX96 for a USDC-per-ETH price (exact to the float's precision)."""
    from decimal import Decimal, getcontext

    getcontext().prec = 80
    return int((Decimal(repr(float(price_usdc_per_eth))) / Decimal(10) ** 12).sqrt() * Decimal(Q96))


def sqrt_at_tick(tick: int) -> int:
    """sqrtPriceX96 at a tick (float maths to ~1e-15 relative; v4-core's TickMath is the exact reference)."""
    from decimal import Decimal, getcontext

    getcontext().prec = 80
    return int(Decimal("1.0001") ** (Decimal(tick) / 2) * Decimal(Q96))


def amount0_delta(sa: int, sb: int, liquidity: int, round_up: bool) -> int:
    sa, sb = min(sa, sb), max(sa, sb)
    num1, num2 = liquidity << 96, sb - sa
    if round_up:
        return _div_up(_div_up(num1 * num2, sb), sa)
    return num1 * num2 // sb // sa


def amount1_delta(sa: int, sb: int, liquidity: int, round_up: bool) -> int:
    sa, sb = min(sa, sb), max(sa, sb)
    return _div_up(liquidity * (sb - sa), Q96) if round_up else liquidity * (sb - sa) // Q96


def next_sqrt_from_input(sqrt_p: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    if zero_for_one:  # token0 in: price down, rounding up
        num1 = liquidity << 96
        return _div_up(num1 * sqrt_p, num1 + amount_in * sqrt_p)
    return sqrt_p + (amount_in << 96) // liquidity


def next_sqrt_from_output(sqrt_p: int, liquidity: int, amount_out: int, zero_for_one: bool) -> int:
    if zero_for_one:  # token1 out: price down, rounding down
        return sqrt_p - _div_up(amount_out << 96, liquidity)
    num1 = liquidity << 96
    return _div_up(num1 * sqrt_p, num1 - amount_out * sqrt_p)


def swap_exact_in(sqrt_p: int, liquidity: int, amount_in: int, zero_for_one: bool,
                  fee_pips: int = V4_FEE) -> tuple[int, int]:
    """(amount_out, sqrt price after) of an exact-input swap that stays inside one liquidity range."""
    less_fee = amount_in * (MAX_FEE_PIPS - fee_pips) // MAX_FEE_PIPS
    nxt = next_sqrt_from_input(sqrt_p, liquidity, less_fee, zero_for_one)
    out = amount1_delta(nxt, sqrt_p, liquidity, False) if zero_for_one else amount0_delta(sqrt_p, nxt, liquidity, False)
    return out, nxt


def swap_exact_out(sqrt_p: int, liquidity: int, amount_out: int, zero_for_one: bool,
                   fee_pips: int = V4_FEE) -> tuple[int, int]:
    """(amount_in including the LP fee, sqrt price after) of an exact-output swap inside one range."""
    nxt = next_sqrt_from_output(sqrt_p, liquidity, amount_out, zero_for_one)
    if zero_for_one:
        amount_in = amount0_delta(nxt, sqrt_p, liquidity, True)
    else:
        amount_in = amount1_delta(sqrt_p, nxt, liquidity, True)
    return amount_in + _div_up(amount_in * fee_pips, MAX_FEE_PIPS - fee_pips), nxt


def input_to_reach(sqrt_p: int, target: int, liquidity: int, fee_pips: int = V4_FEE) -> tuple[bool, int]:
    """(zero_for_one, exact input incl. fee) that moves a single-range pool from sqrt_p to `target`."""
    zero_for_one = target < sqrt_p
    if zero_for_one:
        raw = amount0_delta(target, sqrt_p, liquidity, True)
    else:
        raw = amount1_delta(sqrt_p, target, liquidity, True)
    return zero_for_one, _div_up(raw * MAX_FEE_PIPS, MAX_FEE_PIPS - fee_pips)


def full_range_amounts(sqrt_p: int, liquidity: int) -> tuple[int, int]:
    """(ETH wei, USDC units) a full-range position of `liquidity` needs at sqrt_p (rounded up, as minted)."""
    lo, hi = sqrt_at_tick(FULL_RANGE[0]), sqrt_at_tick(FULL_RANGE[1])
    return amount0_delta(sqrt_p, hi, liquidity, True), amount1_delta(lo, sqrt_p, liquidity, True)


# --- reads ------------------------------------------------------------------------------------------------

def slot0_call() -> tuple[str, list]:
    return ("eth_call", [{"to": BASE_STATE_VIEW, "data": calldata("getSlot0(bytes32)", bytes.fromhex(POOL_ID[2:]))},
                         "latest"])


def liquidity_call() -> tuple[str, list]:
    return ("eth_call", [{"to": BASE_STATE_VIEW, "data": calldata("getLiquidity(bytes32)",
                                                                   bytes.fromhex(POOL_ID[2:]))}, "latest"])


def decode_slot0(raw: str) -> tuple[int, int, int, int]:
    """(sqrtPriceX96, tick, protocolFee, lpFee) from StateView.getSlot0."""
    return decode(["uint160", "int24", "uint24", "uint24"], raw)


def quote_call(zero_for_one: bool, amount_raw: int, exact_in: bool = True) -> tuple[str, list]:
    """V4Quoter.quoteExact{Input,Output}Single for the pool (exact amount of the input / output currency)."""
    data = calldata(_QUOTE_IN if exact_in else _QUOTE_OUT, (POOL_KEY, zero_for_one, amount_raw, b""))
    return ("eth_call", [{"to": BASE_V4_QUOTER, "data": data}, "latest"])


def decode_quote(raw: str) -> int:
    """amountOut (exact in) or amountIn (exact out) from a V4Quoter answer."""
    return decode(["uint256", "uint256"], raw)[0]


def read_pool(chain) -> tuple[int, int, int]:
    """(sqrtPriceX96, tick, liquidity) of the pool, in one round trip."""
    slot0, liq = chain.rpc.batch([slot0_call(), liquidity_call()])
    sqrt_p, tick, _, _ = decode_slot0(slot0)
    return sqrt_p, tick, decode(["uint128"], liq)[0]


def swap_logs(chain, from_block: str, to_block: str = "latest") -> list[dict]:
    """PoolManager Swap logs of this pool (topic 1 is the pool id)."""
    return chain.rpc("eth_getLogs", {"address": BASE_POOL_MANAGER, "fromBlock": from_block, "toBlock": to_block,
                                     "topics": [SWAP_TOPIC, POOL_ID]})


def decode_swap_log(log: dict) -> tuple[int, int, int, int, int]:
    """(amount0, amount1, sqrtPriceX96, liquidity, tick) of a Swap log. The amounts are the swapper's balance
    deltas (v4's BalanceDelta): negative = paid into the pool, positive = received."""
    a0, a1, sqrt_p, liq, tick, _fee = decode(["int128", "int128", "uint160", "uint128", "int24", "uint24"], log["data"])
    return a0, a1, sqrt_p, liq, tick
