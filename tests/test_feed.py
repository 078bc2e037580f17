"""trader_core.feed: bars bucketed by real time, joins by real time (gaps stay gaps, nothing counted twice),
replays that move one bar per tick, and a clock that tells fresh bars from stale ones."""

from __future__ import annotations

import numpy as np
import pytest

from trader_core.errors import DataError
from trader_core.feed import CandleFeed, DatasetFeed, MarketSnapshot, ReplayFeed, join_candles
from trader_core.market_data import bucket_prices
from trader_core.market_data import Candles, load_candles

H = 3600


def hourly(start: int, closes: list[float], name: str = "hist") -> Candles:
    c = np.asarray(closes, dtype=float)
    ts = start + H * np.arange(len(c), dtype=np.int64)
    return Candles(ts, c, c, c, c, None, name, H)


def test_observations_seconds_apart_are_one_bar_not_one_bar_each():
    t0 = 1_700_000_000 // H * H
    bars = bucket_prices([t0 + 5, t0 + 9, t0 + 30], [100.0, 104.0, 101.0], [1, 2, 3], H)
    assert len(bars) == 1  # the old extend_candles made three "hours" of these
    assert (bars.open[0], bars.high[0], bars.low[0], bars.close[0], bars.volume[0]) == (100, 104, 100, 101, 6)


def test_hours_without_trades_repeat_the_last_price_with_zero_volume():
    t0 = 1_700_000_000 // H * H
    bars = bucket_prices([t0 + 10, t0 + 3 * H + 10], [100.0, 110.0], [1.0, 1.0], H)
    assert list(bars.timestamps) == [t0, t0 + H, t0 + 2 * H, t0 + 3 * H]
    assert list(bars.close) == [100, 100, 100, 110] and list(bars.volume) == [1, 0, 0, 1]


def test_join_keeps_a_gap_as_a_gap():
    hist = hourly(1_700_000_000 // H * H, [100.0 + i for i in range(10)])
    live_start = int(hist.timestamps[-1]) + 500 * 24 * H  # a fork 500 days later
    live = hourly(live_start, [2000.0, 2001.0])
    joined = join_candles(hist, live)
    assert len(joined) == 12 and joined.timestamps[10] == live_start  # not "the next hour" after the history
    snap = MarketSnapshot(joined, "test", now=live_start + H + 10, live_bars=2)
    assert snap.continuous_bars == 2 and not snap.stale and snap.age_s == 0


def test_join_counts_a_bar_present_on_both_sides_once_and_the_live_one_wins():
    hist = hourly(1_700_000_000 // H * H, [100.0] * 10)
    live = hourly(int(hist.timestamps[7]), [200.0, 201.0, 202.0, 203.0])  # overlaps the last 3 history bars
    joined = join_candles(hist, live)
    assert len(joined) == 11 and len(np.unique(joined.timestamps)) == 11
    assert list(joined.close[7:]) == [200, 201, 202, 203]
    assert MarketSnapshot(joined, "t", now=int(joined.timestamps[-1]) + 60).continuous_bars == 11


def test_join_drops_volume_unless_both_sides_have_it_and_refuses_other_intervals():
    hist = hourly(1_700_000_000 // H * H, [100.0] * 3)
    live = bucket_prices([int(hist.timestamps[-1]) + H + 1], [101.0], [5.0], H)
    assert join_candles(hist, live).volume is None
    with pytest.raises(DataError, match="build the live bars at the history's interval"):
        join_candles(hist, bucket_prices([int(hist.timestamps[-1]) + H], [101.0], [1.0], 300))


def test_a_replay_shows_one_more_bar_per_tick_and_its_clock_is_the_bar_close():
    data = load_candles("chainlink-eth-1h")
    feed = ReplayFeed.last_bars(data, 3)
    assert isinstance(feed, CandleFeed)
    seen = []
    while True:
        snap = feed.read()
        seen.append((snap.last_time, snap.price, len(snap.candles)))
        assert snap.now == snap.last_time + H and not snap.stale and snap.age_s == 0
        if not feed.advance():
            break
    assert [s[0] for s in seen] == [int(t) for t in data.timestamps[-3:]]
    assert [s[1] for s in seen] == [float(c) for c in data.close[-3:]] and seen[-1][2] == len(data)


def test_file_data_read_today_is_stale_and_says_how_old():
    snap = DatasetFeed("chainlink-eth-1h").read()
    assert snap.stale and snap.age_s > 300 * 24 * H and snap.live_bars == 0
    assert snap.source == "chainlink-eth-1h (bundled)"
    fresh = DatasetFeed("chainlink-eth-1h", clock=lambda: float(snap.last_time + 600)).read()
    assert not fresh.stale and fresh.age_s == 0 and fresh.continuous_bars > 1000
