"""The live candle source: a pool's Swap events bucketed by their real block timestamps.

`ChainFeed` is a `trader_core.feed.CandleFeed`: each read scans the pool's recent Swap events, adds the pool's
price at the chain's current time (a pool's price only moves when someone trades, so the bars between two
swaps repeat the last price), and, given a history feed, continues it at the live bars' own times; a fork's
jump from an old dataset to today stays a gap. Consumers (the agent, `trader run`) never see where bars came from.
"""

from __future__ import annotations

from onchain.chain import Chain
from onchain.models import SwapEvent
from onchain.networks import network_of
from onchain.uniswap import get_price, recent_swaps
from trader_core.feed import CandleFeed, MarketSnapshot, bucket_prices, join_candles

DEFAULT_INTERVAL_S = 3600


class ChainFeed:
    """Candles of `venue`'s pool on `chain` (default: the network's own, v2 on mainnet and v4 on Base), at the
    history's bar interval (else `interval_s`, else 1h)."""

    def __init__(self, chain: Chain, venue: str | None = None, history: CandleFeed | None = None,
                 interval_s: int | None = None, blocks: int = 5_000):
        self.chain, self.venue, self.history = chain, network_of(chain).venue(venue), history
        self.interval_s, self.blocks = interval_s, blocks
        self._events: list[SwapEvent] = []
        self._seen: int | None = None  # last block whose events are in `_events`
        self._first = 0  # first block scanned

    def events(self) -> list[SwapEvent]:
        """The pool's Swap events: the last `blocks` blocks on the first read, then only blocks mined since
        (mined blocks do not change, so a `trader run` tick on a fork does not re-download the window)."""
        latest = int(self.chain.rpc("eth_blockNumber"), 16)
        if self._seen is None:
            self._first = max(0, latest - self.blocks)
            new = recent_swaps(self.chain, self.venue, self.blocks)
        elif latest > self._seen:
            new = [e for e in recent_swaps(self.chain, self.venue, latest - self._seen) if e.block > self._seen]
        else:
            new = []
        self._events += new
        self._seen = max([latest, *(e.block for e in new)])
        return self._events

    def read(self) -> MarketSnapshot:
        past = self.history.read() if self.history is not None else None
        interval = int(self.interval_s or (past.interval_s if past else DEFAULT_INTERVAL_S))
        events = self.events()
        price = get_price(self.chain, self.venue).price
        now = self.chain.block_timestamp()  # read last: no event or price read above is later than `now`
        live = bucket_prices([e.timestamp for e in events] + [now], [e.price for e in events] + [price],
                             [abs(e.eth_delta) for e in events] + [0.0], interval, name=f"chain-{self.venue}")
        source = f"chain {self.venue} swaps ({len(events)} since block {self._first}) + the pool price now"
        if past is None:
            return MarketSnapshot(live, source, now, live_bars=len(live))
        return MarketSnapshot(join_candles(past.candles, live), f"{past.source} + {source}", now, live_bars=len(live))

    def advance(self) -> bool:
        return True
