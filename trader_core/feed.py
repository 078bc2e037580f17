"""Market-data feeds: one interface for everything that needs "the candles up to now".

A `CandleFeed` answers `read() -> MarketSnapshot`: the candles, where they came from, and the feed's own clock
(the chain's block time, the wall clock, or a replay's bar time), so a consumer can tell a fresh bar from a
stale one and a continuous history from one with a hole in it. rl/ reads `snapshot.candles` without knowing
the source; the on-chain source lives in `onchain.market.feed`, the file-based ones here.

Joins follow real time only: a live bar continues a history only at its own timestamp, a bar that exists in
both is counted once (the live one wins), and a gap stays a gap (`segments` splits there), never a fake "hour".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from trader_core.errors import DataError
from trader_core.market_data import DATASETS, DEFAULT_DATASET, Candles, load_candles, segments, validate_candles

# A bar older than this many intervals is stale; the same threshold splits a series into segments.
STALE_AFTER_BARS = 3.0


@dataclass(frozen=True)
class MarketSnapshot:
    """What a feed knows at one moment: candles up to `now` and where they came from."""

    candles: Candles
    source: str  # for people: "chainlink-eth-1h (bundled)", "chain v2 swaps", "X + chain v2 swaps"
    now: int  # the feed's clock, unix seconds (chain time, wall clock, or the replay's bar close)
    live_bars: int = 0  # trailing bars that came from a live source (0: none)

    @property
    def interval_s(self) -> int:
        return int(self.candles.interval_s or 3600)

    @property
    def last_time(self) -> int:
        """Open time of the latest bar."""
        return int(self.candles.timestamps[-1])

    @property
    def price(self) -> float:
        return float(self.candles.close[-1])

    @property
    def age_s(self) -> int:
        """Seconds since the latest bar closed (0 while it is still the current bar)."""
        return max(0, int(self.now) - (self.last_time + self.interval_s))

    @property
    def stale(self) -> bool:
        return self.age_s > STALE_AFTER_BARS * self.interval_s

    @property
    def continuous_bars(self) -> int:
        """Bars in the gap-free run that ends at the latest bar (what a look-back can use)."""
        runs = segments(self.candles, STALE_AFTER_BARS)
        return runs[-1][1] - runs[-1][0] if runs else 0


@runtime_checkable
class CandleFeed(Protocol):
    """A source of candles. `advance()` moves the feed's clock to the next tick: a no-op for live feeds
    (time moves by itself), the next bar for a replay; False when the feed has nothing more to show."""

    def read(self) -> MarketSnapshot: ...

    def advance(self) -> bool: ...


class DatasetFeed:
    """A bundled dataset or a candle CSV, loaded once; its clock is the wall clock, so old data reads stale."""

    def __init__(self, data: str = DEFAULT_DATASET, interval: str | int | None = None,
                 clock: Callable[[], float] = time.time):
        self.data, self.interval, self.clock = str(data), interval, clock
        self._candles: Candles | None = None

    @property
    def candles(self) -> Candles:
        if self._candles is None:
            self._candles = load_candles(self.data, self.interval)
        return self._candles

    def read(self) -> MarketSnapshot:
        kind = "bundled" if self.data in DATASETS else "file"
        return MarketSnapshot(self.candles, f"{self.candles.name} ({kind})", int(self.clock()))

    def advance(self) -> bool:
        return True


class ReplayFeed:
    """Historical candles shown one bar per tick, as if live: the clock is the close of the current bar."""

    def __init__(self, candles: Candles, start: int):
        if len(candles) < 2:
            raise DataError(f"{candles.name}: a replay needs at least 2 bars, got {len(candles)}")
        if not 0 <= start < len(candles):
            raise DataError(f"{candles.name}: replay start {start} is outside its {len(candles)} bars")
        self.candles, self.index = candles, start

    @classmethod
    def last_bars(cls, candles: Candles, bars: int) -> "ReplayFeed":
        """Replay the last `bars` bars; everything before them is the history a look-back reads."""
        return cls(candles, max(0, len(candles) - max(1, bars)))

    @property
    def remaining(self) -> int:
        return len(self.candles) - 1 - self.index

    def read(self) -> MarketSnapshot:
        shown = self.candles.slice(0, self.index + 1)
        now = int(shown.timestamps[-1]) + int(shown.interval_s or 3600)
        return MarketSnapshot(shown, f"replay of {self.candles.name}, bar {self.index + 1}/{len(self.candles)}",
                              now)

    def advance(self) -> bool:
        if self.index + 1 >= len(self.candles):
            return False
        self.index += 1
        return True


def join_candles(history: Candles, live: Candles) -> Candles:
    """`history` continued by `live` at the live bars' real times.

    History bars at or after the first live bar are dropped (a bar is counted once, the live one wins);
    whatever time lies between the two stays a gap. Volume survives only if both sides have it.
    """
    if len(live) == 0:
        return history
    if history.interval_s and live.interval_s and history.interval_s != live.interval_s:
        raise DataError(f"cannot join {live.name} ({live.interval_s}s bars) to {history.name} "
                        f"({history.interval_s}s bars); build the live bars at the history's interval")
    keep = int(np.searchsorted(history.timestamps, live.timestamps[0], side="left"))
    head = history.slice(0, keep)
    volume = None
    if head.volume is not None and live.volume is not None:
        volume = np.concatenate([head.volume, live.volume])
    joined = Candles(np.concatenate([head.timestamps, live.timestamps]), np.concatenate([head.open, live.open]),
                     np.concatenate([head.high, live.high]), np.concatenate([head.low, live.low]),
                     np.concatenate([head.close, live.close]), volume, f"{history.name}+{live.name}",
                     int(history.interval_s or live.interval_s))
    validate_candles(joined, joined.name)
    return joined
