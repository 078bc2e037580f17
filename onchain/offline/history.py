"""Real market history baked into a new replica, so a policy's look-back is covered from the first signal.

A new replica holds one block of prices. Before its seed state is cached, the last `bars` bars of real history
are swapped through the replica's own pools, each swap mined at a real time:
- mainnet: the seed dataset's candles (chainlink-eth-1h by default). In each bar the V2 and V3 pools move to the
  bar's low and high (in the order its direction implies) a quarter and half into the bar, and to its close three
  quarters in; a bar's open is the previous close, already in force (else it is set at the bar's start);
- Base: of the recorded V4 swaps (univ4-base-eth-swaps) of the last `bars` hours, the ones that set each hour's
  open, high, low and close, at their real timestamps and exact post-swap sqrtPriceX96. An hour without a
  recorded swap keeps the last price, as the pool did in the data.
The node starts with its genesis a day before the first bar (anvil --timestamp), so every swap lands in order at
its own time; the pool ends on the history's last close. A loaded state would put anvil's clock at the wall
clock (years later: every bar stale), so `resume_clock` sets it back to the head block's time: the chain's clock
goes on from the history's end, after a restart too. The history's range is recorded in the replica itself
(beside its identity), so every later reader, a restart or a fork of it knows what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from onchain.node import chain as C
from onchain.models import ChainHistory
from onchain.networks import BASE, V4_DATASET, Network
from trader_core.errors import ChainError, ConfigError, DataError

MAX_BARS = 24 * 365  # a year of hourly bars: far beyond any look-back, and still bakes in minutes
GENESIS_LEAD_S = 86_400  # building the replica (about a minute of block time) fits well inside a day
HOUR = 3600
# Storage slots of onchain.node.chain.IDENTITY_ADDRESS that record the history (slot 0 is the replica's identity).
_SLOTS = ("first_bar", "last_bar", "interval_s", "bars", "data")


@dataclass(frozen=True)
class Mark:
    """One price the pool is moved to, the swap mined at block time `timestamp`."""

    timestamp: int
    price: float  # USDC per ETH
    sqrt_price_x96: int | None = None  # Base: the recorded swap's exact post-swap price


@dataclass(frozen=True)
class HistoryPlan:
    """What a bake will mine: the marks in time order and the range they cover."""

    history: ChainHistory
    marks: tuple[Mark, ...]

    @property
    def genesis(self) -> int:
        """Genesis time for the node that bakes it (anvil --timestamp): a day before the first swap."""
        return self.marks[0].timestamp - GENESIS_LEAD_S

    @property
    def last_close(self) -> float:
        return self.marks[-1].price


def check_bars(bars: int | None) -> int:
    """0 (no history) .. MAX_BARS; anything else is one ConfigError line."""
    if bars is None:
        return 0
    if isinstance(bars, bool) or not isinstance(bars, int) or not 0 <= bars <= MAX_BARS:
        raise ConfigError(f"--history-bars must be a whole number of bars from 0 to {MAX_BARS}, got {bars!r}")
    return bars


def plan_history(network: Network, bars: int, dataset: str | None = None) -> HistoryPlan | None:
    """The last `bars` bars of `dataset` (default: the network's seed data) as marks; None for bars == 0."""
    if check_bars(bars) == 0:
        return None
    if network is BASE:
        return _plan_swaps(dataset or V4_DATASET, bars)
    from trader_core.market_data import DEFAULT_DATASET

    return _plan_candles(dataset or DEFAULT_DATASET, bars)


def _plan_candles(dataset: str, bars: int) -> HistoryPlan:
    from trader_core.market_data import load_candles, segments

    candles = load_candles(dataset)
    start, stop = segments(candles)[-1]  # the latest gap-free run: history is never glued across a gap
    c = candles.slice(max(start, stop - bars), stop)
    interval = int(c.interval_s or HOUR)
    marks: list[Mark] = []
    for t, o, h, lo, close in zip(c.timestamps, c.open, c.high, c.low, c.close):
        extremes = (lo, h) if close >= o else (h, lo)  # the usual path: a rising bar dips first, a falling one peaks
        for quarter, price in ((0, o), (1, extremes[0]), (2, extremes[1]), (3, close)):
            if marks and abs(float(price) / marks[-1].price - 1) < 1e-9:
                continue  # the pool already stands there
            marks.append(Mark(int(t) + interval * quarter // 4, float(price)))
    return _plan(c.name, interval, marks)


def _plan_swaps(dataset: str, bars: int) -> HistoryPlan:
    from onchain.venues import v4
    from onchain.market.v4_replay import load_swaps

    rows = load_swaps(dataset)
    first_hour = rows[-1].timestamp // HOUR - (bars - 1)
    hours: dict[int, list] = {}
    for row in rows:
        if row.timestamp // HOUR >= first_hour:
            hours.setdefault(row.timestamp // HOUR, []).append(row)
    marks = []
    for _, swaps in sorted(hours.items()):
        prices = [s.sqrt_price_x96 for s in swaps]  # price rises with sqrtPriceX96 (ETH is token0)
        keep = {0, len(swaps) - 1, prices.index(max(prices)), prices.index(min(prices))}
        marks += [Mark(swaps[i].timestamp, v4.price_from_sqrt(prices[i]), prices[i]) for i in sorted(keep)]
    return _plan(str(dataset), HOUR, marks)


def _plan(data: str, interval: int, marks: list[Mark]) -> HistoryPlan:
    if not marks:
        raise DataError(f"{data}: no bars to bake as the replica's history")
    first, last = marks[0].timestamp // interval * interval, marks[-1].timestamp // interval * interval
    history = ChainHistory(data=data, bars=(last - first) // interval + 1, interval_s=interval, first_bar=first,
                           last_bar=last)
    return HistoryPlan(history, tuple(marks))


def bake(chain: C.Chain, network: Network, plan: HistoryPlan) -> ChainHistory:
    """Mine the plan's swaps at their times on a new replica of `network` and record the range in it."""
    now = chain.block_timestamp()
    if now >= plan.marks[0].timestamp:
        raise ChainError(f"the node's clock ({now}) is past the history's first swap ({plan.marks[0].timestamp}); "
                         "start it with its genesis before that (anvil --timestamp)")
    if network is BASE:
        from onchain.market.v4_replay import walk_pool

        swaps = walk_pool(chain, [(m.timestamp, m.sqrt_price_x96) for m in plan.marks])
    else:
        from onchain.market.replay import BarReplayer

        walker = BarReplayer(chain, ("v2", "v3"), plan.history.interval_s)
        for mark in plan.marks:
            walker.move_at(mark.timestamp, mark.price)
        swaps = walker.swaps
    history = plan.history.model_copy(update={"swaps": swaps})
    record(chain, history)
    return history


def record(chain: C.Chain, history: ChainHistory) -> None:
    """Write the history's range into the replica (kept by every dump, load and fork)."""
    name = history.data.encode()[-32:]  # a long CSV path keeps its end (the file name)
    values = [history.first_bar, history.last_bar, history.interval_s, history.bars, int.from_bytes(name, "big")]
    for slot, value in enumerate(values, start=1):
        chain.rpc("anvil_setStorageAt", C.IDENTITY_ADDRESS, hex(slot), "0x" + f"{value:064x}")


def read_history(chain: C.Chain) -> ChainHistory | None:
    """The baked history this chain records, or None (a replica without one, a real node, a fork of one)."""
    words = chain.rpc.batch([("eth_getStorageAt", [C.IDENTITY_ADDRESS, hex(slot), "latest"])
                             for slot in range(1, len(_SLOTS) + 1)])
    values = [int(w or "0x0", 16) for w in words]
    if not values[0] or not values[2]:
        return None
    raw = values[4].to_bytes(32, "big").lstrip(b"\0")
    return ChainHistory(data=raw.decode(errors="replace"), bars=values[3], interval_s=values[2],
                        first_bar=values[0], last_bar=values[1])


def resume_clock(chain: C.Chain) -> int:
    """After loading a saved state, set anvil's clock to just after the head block (a load starts it at the wall
    clock, which would age every baked bar by years); returns the clock's new time."""
    head = int(chain.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    chain.rpc("evm_setTime", hex(head + 1))
    return head + 1
