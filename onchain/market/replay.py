"""`trader chain replay`: walk the replica's pools along a real historical price path with real swaps.

An arbitrageur (anvil dev account 8) swaps each pool to the next candle's close, so the agent sees a live
market and real Swap events; as fast as the node mines, or (`--hourly`, `replay_bars`) one bar of block time
per close, so the pool's candles carry the whole path. Swap sizes come from closed-form AMM maths; V3 swaps also pass the target as
sqrtPriceLimitX96, so they stop exactly on it.
"""

from __future__ import annotations

import math
import time

from pydantic import BaseModel

from onchain.node import chain as C
from onchain.networks import BASE, network_of
from onchain.node.transactions import send_as
from onchain.node.rpc import calldata, decode
from onchain.venues.v2_v3 import get_price, price_from_reserves
from onchain.execution.wallet import fund
from trader_core.errors import ChainError, ConfigError

MAX_UINT = 2**256 - 1
_V3_EXACT_IN = "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))"


class ReplayResult(BaseModel):
    data: str
    steps: int
    swaps: int
    start_price: float
    end_price_v2: float
    end_price_v3: float
    target_end: float
    max_error_bps: float
    first_timestamp: int | None = None  # --hourly: block time of the first bar (None: as fast as the node mines)
    last_timestamp: int | None = None


def v2_arb_input(usdc_raw: int, weth_raw: int, target: float, fee: float = 0.003) -> tuple[str, int]:
    """(asset_in, raw amount) that moves a V2 pool to `target` USDC/ETH (constant product, fee on input)."""
    k = usdc_raw * weth_raw
    ratio = target * 1e-12  # USDC raw per WETH wei
    x_new = math.sqrt(k * ratio)
    if x_new > usdc_raw:
        return "USDC", int((x_new - usdc_raw) / (1 - fee))
    y_new = math.sqrt(k / ratio)
    return "ETH", int((y_new - weth_raw) / (1 - fee))


def v3_arb_input(sqrt_x96: int, liquidity: int, target: float, fee: float = C.V3_FEE / 1e6) -> tuple[str, int, int]:
    """(asset_in, raw amount, sqrt price limit) for one full-range V3 position to reach `target`."""
    s, s_new = sqrt_x96 / 2**96, math.sqrt(1e12 / target)
    limit = int(s_new * 2**96)
    if s_new < s:  # ETH gets dearer: USDC (token0) in
        return "USDC", int(liquidity * (1 / s_new - 1 / s) / (1 - fee) * 1.01) + 1, limit
    return "ETH", int(liquidity * (s_new - s) / (1 - fee) * 1.01) + 1, limit


def _prepare(chain: C.Chain, arb: str) -> None:
    chain.rpc("anvil_setBalance", arb, hex(10**9 * 10**18))
    fund(chain, arb, usdc=1e12)
    for router in (C.V2_ROUTER, C.V3_ROUTER):
        send_as(chain, arb, C.USDC, calldata("approve(address,uint256)", router, MAX_UINT))


def step_v2(chain: C.Chain, arb: str, target: float, deadline: int) -> bool:
    r0, r1, _ = decode(["uint112", "uint112", "uint32"], chain.call(C.V2_PAIR, calldata("getReserves()")))
    asset, amount = v2_arb_input(r0, r1, target)
    if amount <= 0 or abs(price_from_reserves(r0, r1) / target - 1) < 1e-5:
        return False
    if asset == "USDC":
        data = calldata("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
                        amount, 0, [C.USDC, C.WETH], arb, deadline)
        send_as(chain, arb, C.V2_ROUTER, data, gas=400_000)
    else:
        data = calldata("swapExactETHForTokens(uint256,address[],address,uint256)", 0, [C.WETH, C.USDC], arb, deadline)
        send_as(chain, arb, C.V2_ROUTER, data, value=amount, gas=400_000)
    return True


def step_v3(chain: C.Chain, arb: str, target: float, deadline: int) -> bool:
    slot0, liq = chain.rpc.batch([("eth_call", [{"to": C.V3_POOL, "data": calldata("slot0()")}, "latest"]),
                                  ("eth_call", [{"to": C.V3_POOL, "data": calldata("liquidity()")}, "latest"])])
    sqrt_p = decode(["uint160"], slot0[:66])[0]
    asset, amount, limit = v3_arb_input(sqrt_p, decode(["uint128"], liq)[0], target)
    if amount <= 1 or abs(limit - sqrt_p) <= 1:
        return False
    token_in, token_out = (C.USDC, C.WETH) if asset == "USDC" else (C.WETH, C.USDC)
    data = calldata(_V3_EXACT_IN, (token_in, token_out, C.V3_FEE, arb, deadline, amount, 0, limit))
    # ETH in: the router wraps only what the pool takes; refundETH returns the unused rest in the same tx
    if asset == "ETH":
        data = calldata("multicall(bytes[])", [bytes.fromhex(data[2:]), bytes.fromhex(calldata("refundETH()")[2:])])
        send_as(chain, arb, C.V3_ROUTER, data, value=amount, gas=600_000)
    else:
        send_as(chain, arb, C.V3_ROUTER, data, gas=600_000)
    return True


def _check(chain: C.Chain, venues: tuple[str, ...]) -> None:
    if not chain.local:
        raise ChainError(f"replay only runs on a local anvil node, not on {chain.describe()}")
    if network_of(chain) is BASE:
        raise ConfigError("this replay walks the mainnet V2/V3 pools; on a Base replica `trader chain replay` "
                          "replays the real V4 swaps at their real time spacing")
    bad = [v for v in venues if v not in ("v2", "v3")]
    if bad or not venues:
        raise ConfigError(f"unknown venue {bad[0]!r}; use v2 and/or v3" if bad else "no venue to replay on")


class BarReplayer:
    """Walks the pools to one real close per bar, each bar at its own block time `interval_s` after the last.

    A fast replay lands its whole path in one bar of block time; here each close's swaps are mined at the
    open of the next bar on the chain's clock (anvil's evm_setNextBlockTimestamp), so a candle feed of the
    pool sees one bar per close, continuous, as a pool that traded that long would show. Anything else mined
    during a bar (an agent's own swap) stays inside that bar. The chain's clock ends ahead of the wall clock.
    """

    def __init__(self, chain: C.Chain, venues: tuple[str, ...] = ("v2", "v3"), interval_s: int = 3600):
        _check(chain, venues)
        if interval_s < 1:
            raise ConfigError(f"the bar interval must be at least 1 s, got {interval_s}")
        self.chain, self.venues, self.interval_s = chain, tuple(venues), int(interval_s)
        self.arb = C.dev_account(C.ARB_ACCOUNT).address
        _prepare(chain, self.arb)
        self.swaps = 0

    def next_bar_time(self) -> int:
        """Open of the bar after the one the chain's clock is in (never a bar already used)."""
        return (self.chain.block_timestamp() // self.interval_s + 1) * self.interval_s

    def move_at(self, ts: int, price: float) -> int:
        """Mine the swaps that move the pools to `price`, the first at block time `ts`; returns how many (0: the
        pools already stood there, and `ts` stays set for whatever is mined next)."""
        self.chain.rpc("evm_setNextBlockTimestamp", hex(ts))
        swaps = 0
        if "v2" in self.venues:
            swaps += step_v2(self.chain, self.arb, float(price), deadline=ts + 600)
        if "v3" in self.venues:
            swaps += step_v3(self.chain, self.arb, float(price), deadline=ts + 600)
        self.swaps += swaps
        return swaps

    def step(self, close: float) -> int:
        """Mine the swaps that move the pools to `close` at the next bar's open; returns that block time."""
        ts = self.next_bar_time()
        if not self.move_at(ts, close):
            self.chain.rpc("evm_mine")  # already at the close: an empty block so the clock still moves
        return ts


def replay_bars(chain: C.Chain, closes, interval_s: int = 3600,
                venues: tuple[str, ...] = ("v2", "v3")) -> list[int]:
    """Walk the pools along `closes`, one bar of block time (`interval_s`) apart, starting at the next whole bar
    of the chain's clock; returns the block times used (one per close)."""
    replayer = BarReplayer(chain, venues, interval_s)
    return [replayer.step(float(c)) for c in closes]


def replay(chain: C.Chain, data: str | None = None, steps: int = 50, speed: float = 0.0,
           venues: tuple[str, ...] = ("v2", "v3"), timed: bool = False) -> ReplayResult:
    """Move the pools along the last `steps` closes of `data` (a bundled dataset name or a CSV path);
    `speed` = candles per second (0 = as fast as the node mines). `timed`: each close one bar of block time
    after the last (the data's bar interval), so the pool's candles show the whole path, bar by bar."""
    from trader_core.market_data import DEFAULT_DATASET, load_candles

    _check(chain, venues)
    if steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}")
    if speed < 0 or not math.isfinite(speed):
        raise ConfigError(f"--speed must be >= 0 candles per second, got {speed}")
    candles = load_candles(data or DEFAULT_DATASET)
    path = [float(p) for p in candles.close[-steps:]]
    replayer = BarReplayer(chain, venues, int(candles.interval_s or 3600))
    start = get_price(chain, "v2").price
    stamps = []
    for target in path:
        t0 = time.monotonic()
        if timed:
            stamps.append(replayer.step(target))
        else:
            deadline = chain.block_timestamp() + 600
            if "v2" in venues:
                replayer.swaps += step_v2(chain, replayer.arb, target, deadline)
            if "v3" in venues:
                replayer.swaps += step_v3(chain, replayer.arb, target, deadline)
        if speed > 0:
            time.sleep(max(0.0, 1.0 / speed - (time.monotonic() - t0)))
    p2, p3 = get_price(chain, "v2").price, get_price(chain, "v3").price
    errs = [abs(p / path[-1] - 1) * 1e4 for v, p in (("v2", p2), ("v3", p3)) if v in venues]
    return ReplayResult(data=str(data or DEFAULT_DATASET), steps=len(path), swaps=replayer.swaps, start_price=start,
                        end_price_v2=p2, end_price_v3=p3, target_end=path[-1], max_error_bps=max(errs),
                        first_timestamp=stamps[0] if stamps else None, last_timestamp=stamps[-1] if stamps else None)
