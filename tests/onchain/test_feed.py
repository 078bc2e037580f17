"""onchain.feed.ChainFeed on a real replica: Swap events bucketed by their block timestamps, joined to the bundled
history only at their real times."""

from __future__ import annotations

import numpy as np
import pytest

from trader_core.feed import DatasetFeed

pytestmark = pytest.mark.chain
H = 3600


def test_a_fast_replay_is_one_or_two_bars_at_the_chains_time_not_a_copy_of_the_last_hours(chain):
    from onchain.feed import ChainFeed
    from onchain.replay import replay

    history = DatasetFeed("chainlink-eth-1h")
    replay(chain, steps=12, venues=("v2",))  # the bundled data's last 12 closes, replayed in seconds
    snap = ChainFeed(chain, history=history).read()
    hist = history.read().candles
    c = snap.candles
    now = chain.block_timestamp()
    assert snap.live_bars <= 2  # twelve swaps seconds apart are not twelve "hours"
    assert len(c) == len(hist) + snap.live_bars and len(np.unique(c.timestamps)) == len(c)
    assert c.timestamps[-1] == now // H * H and snap.age_s == 0 and not snap.stale
    # the bundled series ends in 2024: the live bars start a new run, nothing bridges the gap
    assert c.timestamps[len(hist)] - hist.timestamps[-1] > 30 * 24 * H
    assert snap.continuous_bars == snap.live_bars
    assert "chainlink-eth-1h (bundled) + chain v2 swaps" in snap.source


def test_a_feed_reads_only_new_blocks_and_never_counts_an_event_twice(chain):
    from onchain.feed import ChainFeed
    from onchain.replay import replay
    from onchain.uniswap import recent_swaps

    feed = ChainFeed(chain)
    first = len(feed.events())
    result = replay(chain, data="univ3-polygon-eth-1h", steps=4, venues=("v2",))  # other prices: real swaps
    events = feed.events()
    assert len(events) == first + result.swaps and result.swaps > 0
    assert len({(e.tx_hash, e.price) for e in events}) == len(events)
    assert [e.tx_hash for e in events] == [e.tx_hash for e in recent_swaps(chain, "v2", 5_000)][-len(events):]
    assert feed.read().price == pytest.approx(events[-1].price)


def test_hourly_swaps_become_hourly_bars_at_their_block_times(chain_home):
    from onchain.feed import ChainFeed
    from tests.chain_history import replica_with_history

    with replica_with_history(chain_home, hours=30) as (private, stamps, closes):
        snap = ChainFeed(private).read()  # no history: the chain's own bars only
    bars = snap.candles
    assert list(bars.timestamps[-30:]) == stamps
    assert np.allclose(bars.close[-30:], closes, rtol=1e-4)
    assert snap.live_bars == len(bars) and snap.continuous_bars == len(bars) and snap.age_s == 0
    assert bars.volume is not None and (bars.volume[-30:] >= 0).all()
