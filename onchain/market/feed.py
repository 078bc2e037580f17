"""The live candle source: a pool's Swap events bucketed by their real block timestamps.

`ChainFeed` is a `trader_core.feed.CandleFeed`: each read scans the pool's Swap events, adds the pool's price at
the chain's current time (a pool's price only moves when someone trades, so the bars between two swaps repeat
the last price), and, given a history feed, continues it at the live bars' own times; a fork's jump from an old
dataset to today stays a gap. What the chain holds comes first: a replica's baked history (onchain.offline.history) and
a real pool's past are the same Swap events as the swaps made since, so one scan stitches them by block time.
Given `bars`, the first scan reaches back that many bars of chain time (on a fork of a real node: days of
blocks, read in chunks). Consumers (the agent, `trader run`) never see where bars came from.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from onchain.node.chain import Chain
from onchain.models import SwapEvent
from onchain.networks import network_of
from onchain.venues.v2_v3 import LOG_CHUNK_BLOCKS, block_at, get_price, swap_events
from trader_core.feed import CandleFeed, MarketSnapshot, join_candles
from trader_core.market_data import Candles, bucket_prices

DEFAULT_INTERVAL_S = 3600


def open_at_previous_close(bars: Candles) -> Candles:
    """A pool's price at a bar's start is the last price before it: the previous bar's close. Bucketed swaps alone
    open a bar at its first swap and leave that price out of its high and low; here it is the open, as in
    oracle and exchange candles (and the policy's training data)."""
    if len(bars) < 2:
        return bars
    opens = np.r_[bars.open[:1], bars.close[:-1]]
    return replace(bars, open=opens, high=np.maximum(bars.high, opens), low=np.minimum(bars.low, opens))


class ChainFeed:
    """Candles of `venue`'s pool on `chain` (default: the network's own, v2 on mainnet and v4 on Base), at the
    history's bar interval (else `interval_s`, else 1h). The first read scans the last `blocks` blocks, or, given
    `bars`, back to `bars` + 1 bars before the chain's clock if that is further (what a look-back needs), asking
    for `log_chunk` blocks of logs at a time."""

    def __init__(self, chain: Chain, venue: str | None = None, history: CandleFeed | None = None,
                 interval_s: int | None = None, blocks: int = 5_000, bars: int | None = None,
                 log_chunk: int = LOG_CHUNK_BLOCKS):
        self.chain, self.venue, self.history = chain, network_of(chain).venue(venue), history
        self.interval_s, self.blocks, self.bars, self.log_chunk = interval_s, blocks, bars, log_chunk
        self._events: list[SwapEvent] = []
        self._seen: int | None = None  # last block whose events are in `_events`
        self._first = 0  # first block scanned

    def first_block(self, latest: int, interval_s: int) -> int:
        """Where the first scan starts: `blocks` back, or further if `bars` of chain time reach further."""
        start = max(0, latest - self.blocks)
        if not self.bars or start == 0:
            return start
        since = self.chain.block_timestamp() - (int(self.bars) + 1) * interval_s
        header = self.chain.rpc("eth_getBlockByNumber", hex(start), False)
        if int(header["timestamp"], 16) <= since:
            return start  # the block window already reaches back far enough
        return min(start, block_at(self.chain, since, start))

    def events(self, interval_s: int | None = None) -> list[SwapEvent]:
        """The pool's Swap events: the whole window on the first read, then only blocks mined since (mined
        blocks do not change, so a `trader run` tick on a fork does not re-download the window)."""
        latest = int(self.chain.rpc("eth_blockNumber"), 16)
        if self._seen is None:
            self._first = self.first_block(latest, int(interval_s or self.interval_s or DEFAULT_INTERVAL_S))
            new = swap_events(self.chain, self.venue, self._first, latest, self.log_chunk)
        elif latest > self._seen:
            new = swap_events(self.chain, self.venue, self._seen + 1, latest, self.log_chunk)
        else:
            new = []
        self._events += new
        self._seen = latest
        return self._events

    def read(self) -> MarketSnapshot:
        past = self.history.read() if self.history is not None else None
        interval = int(self.interval_s or (past.interval_s if past else DEFAULT_INTERVAL_S))
        events = self.events(interval)
        price = get_price(self.chain, self.venue).price
        now = self.chain.block_timestamp()  # read last: no event or price read above is later than `now`
        live = open_at_previous_close(bucket_prices(
            [e.timestamp for e in events] + [now], [e.price for e in events] + [price],
            [abs(e.eth_delta) for e in events] + [0.0], interval, name=f"chain-{self.venue}"))
        source = f"chain {self.venue} swaps ({len(events)} since block {self._first}) + the pool price now"
        if past is None:
            return MarketSnapshot(live, source, now, live_bars=len(live))
        return MarketSnapshot(join_candles(past.candles, live), f"{past.source} + {source}", now, live_bars=len(live))

    def advance(self) -> bool:
        return True
