"""Reading the market: spot prices (V2 reserves, V3 slot0), exact quotes (Router02 getAmountsOut, QuoterV2),
price impact, pool state, balances, and Swap events -> candles. Pure maths lives in small functions.

Both mainnet pools order tokens USDC (token0, 6 dp) / WETH (token1, 18 dp); so does the replica. Base's V4 pool
(onchain.venues.v4) orders native ETH / USDC; `venue=None` means the chain's network default (v2 on mainnet, v4 on Base).
"""

from __future__ import annotations

import math

from eth_utils import keccak

from onchain.node import chain as C
from onchain.venues import v4
from onchain.node.keys import trading_address
from onchain.models import Asset, PoolInfo, Portfolio, PriceQuote, Quote, Side, SwapEvent, Venue
from onchain.networks import BASE, network_of
from onchain.node.rpc import RpcError, calldata, checksum, decode
from trader_core.errors import SwapRefused

DECIMALS = {"ETH": 18, "USDC": 6}
# More than exists (ETH supply ~1.2e8, USDC ~1e11): an amount above this is a typo or an overflow probe.
MAX_AMOUNT = {"ETH": 1e9, "USDC": 1e12}
FEE_BPS = {"v2": 30.0, "v3": C.V3_FEE / 100, "v4": v4.V4_FEE / 100}
V2_SWAP_TOPIC = "0x" + keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)").hex()
V2_SYNC_TOPIC = "0x" + keccak(text="Sync(uint112,uint112)").hex()
V3_SWAP_TOPIC = "0x" + keccak(text="Swap(address,address,int256,int256,uint160,uint128,int24)").hex()

_GET_RESERVES = calldata("getReserves()")
_SLOT0 = calldata("slot0()")
_LIQUIDITY = calldata("liquidity()")
_QUOTE_IN = "quoteExactInputSingle((address,address,uint256,uint24,uint160))"
_QUOTE_OUT = "quoteExactOutputSingle((address,address,uint256,uint24,uint160))"
_QUOTER_OUT_TYPES = ["uint256", "uint160", "uint32", "uint256"]


# --- pure maths -------------------------------------------------------------------------------------------

def v2_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Uniswap V2 getAmountOut, integer-exact."""
    with_fee = amount_in * (10_000 - fee_bps)
    return with_fee * reserve_out // (reserve_in * 10_000 + with_fee)


def price_from_reserves(usdc_raw: int, weth_raw: int) -> float:
    return (usdc_raw / 1e6) / (weth_raw / 1e18)


def price_from_sqrt(sqrt_price_x96: int) -> float:
    """USDC per ETH from slot0 (token1/token0 = WETH wei per USDC unit)."""
    return 1e12 / (sqrt_price_x96 / 2**96) ** 2


def price_impact_bps(side: str, amount_in: float, amount_out: float, spot: float, fee_bps: float) -> float:
    """How much worse than the mid price (after the LP fee) this fill is, in basis points."""
    ideal = amount_in * spot if side == "sell" else amount_in / spot
    ideal *= 1 - fee_bps / 10_000
    return max(0.0, (1 - amount_out / ideal) * 10_000) if ideal > 0 else 0.0


def to_raw(amount: float, asset: str) -> int:
    return int(round(amount * 10 ** DECIMALS[asset]))


def from_raw(raw: int, asset: str) -> float:
    return raw / 10 ** DECIMALS[asset]


# --- validation (before any RPC) --------------------------------------------------------------------------

def parse_order(side: str, amount, asset: str, venue: str | None) -> tuple[Side, float, Asset, Venue | None]:
    """Normalise and check an order; every problem is one SwapRefused line (nothing was sent).
    venue None stays None (the chain's network picks its default)."""
    s, a = str(side).strip().lower(), str(asset).strip().upper()
    v = None if venue is None else str(venue).strip().lower()
    if s not in ("buy", "sell"):
        raise SwapRefused(f"unknown side {side!r}; use buy (USDC -> ETH) or sell (ETH -> USDC)")
    if a == "WETH":
        a = "ETH"
    if a not in DECIMALS:
        raise SwapRefused(f"unknown asset {asset!r}; use ETH or USDC")
    if v is not None and v not in FEE_BPS:
        raise SwapRefused(f"unknown venue {venue!r}; use v2 or v3 (mainnet) or v4 (Base)")
    try:
        x = float(amount)
    except (TypeError, ValueError):
        raise SwapRefused(f"amount {amount!r} is not a number; pass a positive amount such as 0.5") from None
    if not math.isfinite(x) or x <= 0:
        raise SwapRefused(f"amount must be a positive finite number, got {amount!r}")
    if x > MAX_AMOUNT[a]:
        raise SwapRefused(f"amount {amount!r} {a} is more than exists (at most {MAX_AMOUNT[a]:g} {a}); "
                          "pass a real amount")
    if to_raw(x, a) <= 0:
        raise SwapRefused(f"amount {amount!r} {a} is below the token's smallest unit")
    return s, x, a, v  # type: ignore[return-value]


def route(side: str) -> tuple[str, str, str, str]:
    """(asset_in, asset_out, token_in, token_out) for a side of ETH."""
    return ("USDC", "ETH", C.USDC, C.WETH) if side == "buy" else ("ETH", "USDC", C.WETH, C.USDC)


# --- reads ------------------------------------------------------------------------------------------------

def get_price(chain: C.Chain, venue: str | None = None) -> PriceQuote:
    """Mid price in USDC per ETH from V2 reserves, V3 slot0 or V4 StateView.getSlot0 (None: network default)."""
    venue = network_of(chain).venue(venue)
    if venue == "v4":
        sqrt_p = v4.decode_slot0(chain.rpc.batch([v4.slot0_call()])[0])[0]
        return PriceQuote(venue="v4", price=v4.price_from_sqrt(sqrt_p))
    if venue == "v2":
        r0, r1, _ = decode(["uint112", "uint112", "uint32"], chain.call(C.V2_PAIR, _GET_RESERVES))
        return PriceQuote(venue="v2", price=price_from_reserves(r0, r1))
    if venue == "v3":
        sqrt_p = decode(["uint160"], chain.call(C.V3_POOL, _SLOT0)[:66])[0]
        return PriceQuote(venue="v3", price=price_from_sqrt(sqrt_p))
    raise SwapRefused(f"unknown venue {venue!r}; use v2 or v3")


def get_pool(chain: C.Chain, venue: str | None = None) -> PoolInfo:
    venue = network_of(chain).venue(venue)
    if venue == "v4":
        sqrt_p, tick, liquidity = v4.read_pool(chain)
        return PoolInfo(venue="v4", address=v4.POOL_ID, price=v4.price_from_sqrt(sqrt_p), fee_bps=FEE_BPS["v4"],
                        liquidity=liquidity, tick=tick)
    if venue == "v2":
        r0, r1, _ = decode(["uint112", "uint112", "uint32"], chain.call(C.V2_PAIR, _GET_RESERVES))
        return PoolInfo(venue="v2", address=C.V2_PAIR, price=price_from_reserves(r0, r1), fee_bps=30.0,
                        usdc_reserve=r0 / 1e6, eth_reserve=r1 / 1e18)
    slot0, liq = chain.rpc.batch([("eth_call", [{"to": C.V3_POOL, "data": _SLOT0}, "latest"]),
                                  ("eth_call", [{"to": C.V3_POOL, "data": _LIQUIDITY}, "latest"])])
    sqrt_p, tick = decode(["uint160", "int24"], slot0[:130])
    return PoolInfo(venue="v3", address=C.V3_POOL, price=price_from_sqrt(sqrt_p), fee_bps=FEE_BPS["v3"],
                    liquidity=decode(["uint128"], liq)[0], tick=tick)


def _exact_in_calls(venue: str, token_in: str, token_out: str, amount_raw: int) -> list[tuple[str, list]]:
    if venue == "v4":  # ETH in (zeroForOne) unless USDC is the input
        return [v4.slot0_call(), v4.quote_call(token_in != C.USDC, amount_raw)]
    if venue == "v2":
        data = calldata("getAmountsOut(uint256,address[])", amount_raw, [token_in, token_out])
        return [("eth_call", [{"to": C.V2_PAIR, "data": _GET_RESERVES}, "latest"]),
                ("eth_call", [{"to": C.V2_ROUTER, "data": data}, "latest"])]
    data = calldata(_QUOTE_IN, (token_in, token_out, amount_raw, C.V3_FEE, 0))
    return [("eth_call", [{"to": C.V3_POOL, "data": _SLOT0}, "latest"]),
            ("eth_call", [{"to": C.V3_QUOTER, "data": data}, "latest"])]


def amount_in_for_out(chain: C.Chain, venue: str, token_in: str, token_out: str, out_raw: int) -> int:
    """Input needed for an exact output (V2 getAmountsIn / QuoterV2 / V4Quoter quoteExactOutputSingle)."""
    if venue == "v4":
        return v4.decode_quote(chain.rpc.batch([v4.quote_call(token_in != C.USDC, out_raw, exact_in=False)])[0])
    if venue == "v2":
        data = calldata("getAmountsIn(uint256,address[])", out_raw, [token_in, token_out])
        return decode(["uint256[]"], chain.call(C.V2_ROUTER, data))[0][0]
    data = calldata(_QUOTE_OUT, (token_in, token_out, out_raw, C.V3_FEE, 0))
    return decode(_QUOTER_OUT_TYPES, chain.call(C.V3_QUOTER, data))[0]


def get_quote(chain: C.Chain, side: str = "sell", amount: float = 1.0, asset: str = "ETH",
              venue: str | None = None) -> Quote:
    """Exact quote for a size. `asset` says which side `amount` is in: `sell 1 ETH` spends 1 ETH,
    `buy 1 ETH` receives ~1 ETH (the input is solved exactly, then quoted as an exact-input swap)."""
    side, amount, asset, venue = parse_order(side, amount, asset, venue)
    venue = network_of(chain).venue(venue)
    asset_in, asset_out, token_in, token_out = route(side)
    if asset == asset_in:
        in_raw = to_raw(amount, asset_in)
    else:
        try:
            in_raw = amount_in_for_out(chain, venue, token_in, token_out, to_raw(amount, asset_out))
        except RpcError as exc:  # the pool holds less than the exact output asked for
            raise SwapRefused(f"the {venue} pool cannot deliver {amount:g} {asset_out} "
                              f"({exc.revert_reason}); ask for less") from None
    try:
        spot_raw, out_data = chain.rpc.batch(_exact_in_calls(venue, token_in, token_out, in_raw))
    except RpcError as exc:
        raise SwapRefused(f"the {venue} pool cannot quote {from_raw(in_raw, asset_in):g} {asset_in} "
                          f"({exc.revert_reason}); ask for less") from None
    if venue == "v4":
        spot, out_raw = v4.price_from_sqrt(v4.decode_slot0(spot_raw)[0]), v4.decode_quote(out_data)
    elif venue == "v2":
        r0, r1, _ = decode(["uint112", "uint112", "uint32"], spot_raw)
        spot = price_from_reserves(r0, r1)
        out_raw = decode(["uint256[]"], out_data)[0][-1]
    else:
        spot = price_from_sqrt(decode(["uint160"], spot_raw[:66])[0])
        out_raw = decode(_QUOTER_OUT_TYPES, out_data)[0]
    amount_in, amount_out = from_raw(in_raw, asset_in), from_raw(out_raw, asset_out)
    eth, usdc = (amount_out, amount_in) if side == "buy" else (amount_in, amount_out)
    fee = FEE_BPS[venue]
    return Quote(venue=venue, side=side, asset_in=asset_in, asset_out=asset_out, amount_in=amount_in,
                 amount_out=amount_out, price=usdc / eth if eth > 0 else 0.0, spot_price=spot,
                 price_impact_bps=price_impact_bps(side, amount_in, amount_out, spot, fee), fee_bps=fee,
                 amount_in_raw=in_raw, amount_out_raw=out_raw)


def get_portfolio(chain: C.Chain, address: str | None = None) -> Portfolio:
    """ETH, WETH and USDC balances (token units) and their USD value at the network default venue's mid price."""
    address = checksum(address) if address is not None else trading_address()
    net = network_of(chain)
    bal = calldata("balanceOf(address)", address)
    mid = v4.slot0_call() if net is BASE else ("eth_call", [{"to": C.V2_PAIR, "data": _GET_RESERVES}, "latest"])
    eth, weth, usdc, reserves = chain.rpc.batch([
        ("eth_getBalance", [address, "latest"]),
        ("eth_call", [{"to": net.weth, "data": bal}, "latest"]),
        ("eth_call", [{"to": net.usdc, "data": bal}, "latest"]),
        mid,
    ])
    e, w, u = int(eth, 16) / 1e18, int(weth, 16) / 1e18, int(usdc, 16) / 1e6
    if net is BASE:
        price = v4.price_from_sqrt(v4.decode_slot0(reserves)[0]) or None
    else:
        r0, r1, _ = decode(["uint112", "uint112", "uint32"], reserves)
        price = price_from_reserves(r0, r1) if r1 else None
    return Portfolio(address=address, eth=e, weth=w, usdc=u, price=price,
                     value_usd=(e + w) * price + u if price else None)


# --- Swap events -> candles -------------------------------------------------------------------------------

LOG_CHUNK_BLOCKS = 10_000  # eth_getLogs blocks per request: hosted nodes cap the range (a refusal halves it)
MIN_LOG_CHUNK = 100
BLOCK_BATCH = 500  # block headers per batched request when logs carry no blockTimestamp


def recent_swaps(chain: C.Chain, venue: str | None = "v3", blocks: int = 5_000) -> list[SwapEvent]:
    """Swap events of the ETH/USDC pool over the last `blocks` blocks, with the post-swap mid price
    (on Base the V4 pool, whatever `venue` says: it is the only one there)."""
    latest = int(chain.rpc("eth_blockNumber"), 16)
    return swap_events(chain, venue, max(0, latest - blocks), latest)


def swap_events(chain: C.Chain, venue: str | None, from_block: int, to_block: int,
                chunk: int = LOG_CHUNK_BLOCKS) -> list[SwapEvent]:
    """Swap events of the pool in blocks `from_block`..`to_block` (inclusive), in chain order, fetched `chunk`
    blocks per eth_getLogs: a fork of a real node reaches back days (Base: 43,200 blocks a day), far past what one
    request may span. A range the node refuses is halved, down to MIN_LOG_CHUNK blocks."""
    venue = "v4" if network_of(chain) is BASE else network_of(chain).venue(venue)
    logs: list[dict] = []
    start, size = max(0, from_block), max(MIN_LOG_CHUNK, int(chunk))
    while start <= to_block:
        end = min(to_block, start + size - 1)
        try:
            logs += _pool_logs(chain, venue, hex(start), hex(end))
        except RpcError:
            if size <= MIN_LOG_CHUNK:
                raise
            size //= 2
            continue
        start = end + 1
    return _decode_swaps(chain, venue, logs)


def _pool_logs(chain: C.Chain, venue: str, start: str, end: str) -> list[dict]:
    if venue == "v4":
        return v4.swap_logs(chain, start, end)
    if venue == "v2":  # V2 emits Sync right before Swap, in the same transaction: a chunk never splits the two
        return chain.rpc("eth_getLogs", {"address": C.V2_PAIR, "fromBlock": start, "toBlock": end,
                                         "topics": [[V2_SWAP_TOPIC, V2_SYNC_TOPIC]]})
    return chain.rpc("eth_getLogs", {"address": C.V3_POOL, "fromBlock": start, "toBlock": end,
                                     "topics": [V3_SWAP_TOPIC]})


def _block_times(chain: C.Chain, logs: list[dict]) -> dict[str, int]:
    """blockNumber -> timestamp: from the logs themselves where the node includes it, else from the headers."""
    stamps = {log["blockNumber"]: int(log["blockTimestamp"], 16) for log in logs if log.get("blockTimestamp")}
    missing = sorted({log["blockNumber"] for log in logs} - set(stamps))
    for i in range(0, len(missing), BLOCK_BATCH):
        part = missing[i:i + BLOCK_BATCH]
        headers = chain.rpc.batch([("eth_getBlockByNumber", [b, False]) for b in part])
        stamps.update(zip(part, (int(h["timestamp"], 16) for h in headers)))
    return stamps


def _decode_swaps(chain: C.Chain, venue: str, logs: list[dict]) -> list[SwapEvent]:
    stamps = _block_times(chain, logs)
    events, last_sync = [], None
    for log in logs:
        topic = log["topics"][0]
        if topic == V2_SYNC_TOPIC:
            last_sync = decode(["uint112", "uint112"], log["data"])  # V2 emits Sync right before Swap
            continue
        if topic == V2_SWAP_TOPIC:
            a0i, a1i, a0o, a1o = decode(["uint256"] * 4, log["data"])
            usdc_d, eth_d = (a0i - a0o) / 1e6, (a1i - a1o) / 1e18
            price = price_from_reserves(*last_sync) if last_sync else abs(usdc_d / eth_d)
        elif topic == v4.SWAP_TOPIC:  # amounts are the swapper's deltas: the pool's are their negatives
            a0, a1, sqrt_p, _, _ = v4.decode_swap_log(log)
            eth_d, usdc_d, price = -a0 / 1e18, -a1 / 1e6, v4.price_from_sqrt(sqrt_p)
        else:
            a0, a1, sqrt_p, _, _ = decode(["int256", "int256", "uint160", "uint128", "int24"], log["data"])
            usdc_d, eth_d, price = a0 / 1e6, a1 / 1e18, price_from_sqrt(sqrt_p)
        events.append(SwapEvent(venue=venue, block=int(log["blockNumber"], 16), timestamp=stamps[log["blockNumber"]],
                                tx_hash=log["transactionHash"], price=price, eth_delta=eth_d, usdc_delta=usdc_d))
    return events


def block_at(chain: C.Chain, timestamp: int, latest: int) -> int:
    """The first block at or after `timestamp` (binary search on headers, ~log2(latest) reads); latest + 1 if
    none is."""
    def stamp(n: int) -> int:
        return int(chain.rpc("eth_getBlockByNumber", hex(n), False)["timestamp"], 16)

    lo, hi = 0, latest + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if stamp(mid) >= timestamp:
            hi = mid
        else:
            lo = mid + 1
    return lo


def swaps_to_candles(events: list[SwapEvent], interval: str | int = "1m"):
    """Pool Swap events -> trader_core Candles (USDC per ETH), e.g. to feed the policy from the chain."""
    import pandas as pd

    from trader_core.errors import DataError
    from trader_core.market_data import parse_interval
    from trader_core.market_data import swaps_to_candles as to_candles

    if not events:
        raise DataError("no Swap events in range; trade or run `trader chain replay` first")
    # trader_core's converter reads an ETH-as-token0 sqrt price: sqrt(P / 1e12) * 2**96
    frame = pd.DataFrame({
        "timestamp": [e.timestamp for e in events],
        "sqrt_price_x96": [str(int(math.sqrt(e.price / 1e12) * 2**96)) for e in events],
        "amount0": [str(int(abs(e.eth_delta) * 1e18)) for e in events],
    })
    return to_candles(frame, parse_interval(interval), name=f"chain-{events[0].venue}", source="chain swaps")
