"""onchain.market.feed.ChainFeed on a real replica: Swap events bucketed by their block timestamps, joined to the bundled
history only at their real times."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import HANG_S
from tests.onchain.execution.test_guards import live_chain  # noqa: F401 - the fixture: a chain that looks like mainnet
from trader_core.feed import DatasetFeed

pytestmark = pytest.mark.chain
H = 3600


@pytest.fixture
def replayed_chain(chain):
    """The session chain for a test that replays other prices through its pools, put back as it was afterwards:
    the tests after it (the CLI's swaps under the daily-loss kill switch, which marks today's swaps to market) see
    the pools' own price, whatever order the tests run in."""
    snapshot = chain.rpc("evm_snapshot")
    yield chain
    assert chain.rpc("evm_revert", snapshot)


def test_a_fast_replay_is_one_or_two_bars_at_the_chains_time_not_a_copy_of_the_last_hours(replayed_chain):
    chain = replayed_chain
    from onchain.market.feed import ChainFeed
    from onchain.market.replay import replay

    history = DatasetFeed("chainlink-eth-1h")
    before = ChainFeed(chain, history=history).read()
    replay(chain, steps=12, venues=("v2",))  # the bundled data's last 12 closes, replayed in seconds
    snap = ChainFeed(chain, history=history).read()
    c = snap.candles
    now = chain.block_timestamp()
    assert snap.live_bars - before.live_bars <= 2  # twelve swaps seconds apart are not twelve "hours"
    assert len(np.unique(c.timestamps)) == len(c) and c.timestamps[-1] == now // H * H
    assert snap.age_s == 0 and not snap.stale
    assert "chainlink-eth-1h (bundled) + chain v2 swaps" in snap.source


def test_a_feed_reads_only_new_blocks_and_never_counts_an_event_twice(replayed_chain):
    chain = replayed_chain
    from onchain.market.feed import ChainFeed
    from onchain.market.replay import replay
    from onchain.venues.v2_v3 import recent_swaps

    feed = ChainFeed(chain)
    first = len(feed.events())
    result = replay(chain, data="univ3-polygon-eth-1h", steps=4, venues=("v2",))  # other prices: real swaps
    events = feed.events()
    assert len(events) == first + result.swaps and result.swaps > 0
    assert len({(e.tx_hash, e.price) for e in events}) == len(events)
    assert [e.tx_hash for e in events] == [e.tx_hash for e in recent_swaps(chain, "v2", 5_000)][-len(events):]
    assert feed.read().price == pytest.approx(events[-1].price)


def test_hourly_swaps_become_hourly_bars_at_their_block_times(chain_home):
    from onchain.market.feed import ChainFeed
    from tests.chain_history import replica_with_history

    with replica_with_history(chain_home, hours=30) as (private, stamps, closes):
        snap = ChainFeed(private).read()  # no history: the chain's own bars only
    bars = snap.candles
    assert list(bars.timestamps[-30:]) == stamps
    assert np.allclose(bars.close[-30:], closes, rtol=1e-4)
    assert snap.live_bars == len(bars) and snap.continuous_bars == len(bars) and snap.age_s == 0
    assert bars.volume is not None and (bars.volume[-30:] >= 0).all()


def test_chain_replay_hourly_leaves_one_continuous_bar_per_close_on_both_pools(chain_home):
    """`trader chain replay --hourly`: each real close one hour of block time after the last, on V2 and V3."""
    import json
    import subprocess
    import sys

    from onchain.api import PrivateReplica
    from onchain.market.feed import ChainFeed
    from tests.conftest import clean_env
    from trader_core.market_data import load_candles

    closes = load_candles("chainlink-eth-1h").close[-30:]
    mp = clean_env(chain_home)
    try:
        with PrivateReplica() as private:
            proc = subprocess.run([sys.executable, "-m", "agent.cli", "chain", "replay", "--hourly", "--steps", "30",
                                   "--rpc-url", private.rpc_url, "--json"], capture_output=True, text=True,
                                  timeout=HANG_S)
            assert proc.returncode == 0, proc.stderr
            result = json.loads(proc.stdout)
            snaps = {v: ChainFeed(private, venue=v).read() for v in ("v2", "v3")}
    finally:
        mp.undo()
    first, last = result["first_timestamp"], result["last_timestamp"]
    assert first % H == 0 and last - first == 29 * H and result["max_error_bps"] < 1
    for venue, snap in snaps.items():
        bars = snap.candles
        assert list(bars.timestamps[-30:]) == list(range(first, last + H, H)), venue
        np.testing.assert_allclose(bars.close[-30:], closes, rtol=1e-4, err_msg=venue)
        assert snap.continuous_bars >= 30 and not snap.stale


def test_chain_replay_feed_warms_up_the_look_back_then_moves_one_bar_per_tick(chain_home):
    from onchain.api import PrivateReplica
    from onchain.market.replay_feed import ChainReplayFeed
    from tests.conftest import clean_env
    from trader_core.market_data import load_candles

    candles = load_candles("chainlink-eth-1h")
    mp = clean_env(chain_home)
    try:
        with PrivateReplica() as private:
            feed = ChainReplayFeed(private, candles, warmup=20, ticks=3, venues=("v2",))
            first = feed.read()
            moved = [feed.advance() for _ in range(2)]
            second = feed.read()
            done = feed.advance()
    finally:
        mp.undo()
    assert first.continuous_bars >= 20 and first.live_bars >= 20
    np.testing.assert_allclose(first.candles.close[-20:], candles.close[-22:-2], rtol=1e-4)
    assert moved == [True, True] and done is False  # 20 warm-up bars + 2 more closes: the data's last 22
    assert second.last_time == first.last_time + 2 * H and second.price == pytest.approx(candles.close[-1], rel=1e-4)
    assert "chain replay of chainlink-eth-1h, bar 22/22" in second.source


def test_chain_replay_refuses_a_non_local_chain_and_too_little_data(live_chain, chain):
    from onchain.market.replay_feed import ChainReplayFeed
    from trader_core.errors import ChainError, DataError
    from trader_core.market_data import load_candles

    candles = load_candles("chainlink-eth-1h")
    block = chain.rpc("eth_blockNumber")
    with pytest.raises(ChainError, match="only runs on a local anvil node"):
        ChainReplayFeed(live_chain, candles, warmup=10, ticks=2)
    with pytest.raises(DataError, match="pass fewer --iterations"):
        ChainReplayFeed(chain, candles.slice(0, 50), warmup=40, ticks=20)
    assert chain.rpc("eth_blockNumber") == block  # nothing was mined
