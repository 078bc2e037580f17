"""A replay of real closes driven through a local replica: the `trader run --feed chain-replay` market.

`ChainReplayFeed` is a `trader_core.feed.CandleFeed`. Before the first read it walks the replica's pools along
`warmup` real closes, one bar of block time apart (`replay.BarReplayer`), so the policy's look-back is covered by
the pool's own bars; each `advance()` then replays the next close one bar later. What it shows is the pool's
`ChainFeed`, so prices, price impact, gas and the agent's own swaps are the chain's, not a file's.
"""

from __future__ import annotations

from onchain.node.chain import Chain
from onchain.market.feed import ChainFeed
from onchain.market.replay import BarReplayer
from trader_core.errors import DataError
from trader_core.feed import MarketSnapshot
from trader_core.market_data import Candles


class ChainReplayFeed:
    """`warmup` closes of `candles` replayed before the first tick, then one close per `advance()`, up to
    `ticks - 1` more (the first tick shows the last warm-up bar). Reads the pool of `venue` (v2 by default)."""

    def __init__(self, chain: Chain, candles: Candles, warmup: int, ticks: int,
                 venues: tuple[str, ...] = ("v2", "v3"), venue: str = "v2"):
        if warmup < 1 or ticks < 1:
            raise DataError(f"a chain replay needs at least one warm-up bar and one tick, got {warmup} and {ticks}")
        bars = warmup + ticks - 1
        if len(candles) < bars:
            raise DataError(f"{candles.name} has {len(candles)} bars; {warmup} warm-up bars + {ticks} ticks need "
                            f"{bars}: pass fewer --iterations or a longer --data")
        self.closes = [float(c) for c in candles.close[-bars:]]
        self.name, self.warmup = candles.name, warmup
        self.replayer = BarReplayer(chain, venues, int(candles.interval_s or 3600))
        self.live = ChainFeed(chain, venue=venue, interval_s=self.replayer.interval_s,
                              blocks=max(5_000, 8 * bars))  # every replayed bar stays in the scanned window
        self.index = -1  # the close the chain is at (-1: not warmed up yet)

    @property
    def chain(self) -> Chain:
        return self.live.chain

    def warm_up(self) -> None:
        while self.index + 1 < self.warmup:
            self.index += 1
            self.replayer.step(self.closes[self.index])

    def read(self) -> MarketSnapshot:
        self.warm_up()
        snap = self.live.read()
        where = f"chain replay of {self.name}, bar {self.index + 1}/{len(self.closes)}: {snap.source}"
        return MarketSnapshot(snap.candles, where, snap.now, snap.live_bars)

    def advance(self) -> bool:
        self.warm_up()
        if self.index + 1 >= len(self.closes):
            return False
        self.index += 1
        self.replayer.step(self.closes[self.index])
        return True
