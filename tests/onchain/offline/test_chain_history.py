"""Real market history on a new replica (onchain.offline.history): the pools walked the real bars at their real times, the
pool ends on the history's last close, the clock goes on from there (after a restart too), live swaps continue
it bar by bar, a fork reads the same history through chunked getLogs, and `trader signal` decides at once."""

from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np
import pytest

from tests.conftest import clean_env, history_bars
from tests.onchain.conftest import seeded_home, trader_cli

pytestmark = pytest.mark.chain
H = 3600


@contextmanager
def pristine(home, network: str | None = None):
    """A private replica loaded from `home`'s cached baked seed state (no other test has traded on it)."""
    from onchain.api import PrivateReplica

    mp = clean_env(home)
    try:
        with PrivateReplica(network=network, history_bars=history_bars()) as chain:
            yield chain
    finally:
        mp.undo()


class RangeCap:
    """A node's Rpc with a hosted provider's eth_getLogs range limit: a wider request is refused."""

    def __init__(self, rpc, max_blocks: int):
        self.rpc, self.max_blocks, self.refused, self.spans = rpc, max_blocks, 0, []

    def __call__(self, method, *params):
        if method == "eth_getLogs":
            span = int(params[0]["toBlock"], 16) - int(params[0]["fromBlock"], 16) + 1
            if span > self.max_blocks:
                from onchain.node.rpc import RpcError

                self.refused += 1
                raise RpcError(method, f"block range too large ({span} > {self.max_blocks})")
            self.spans.append(span)
        return self.rpc(method, *params)

    def batch(self, calls):
        return self.rpc.batch(calls)

    def close(self):
        self.rpc.close()


def test_a_new_mainnet_replica_holds_the_real_hourly_candles_at_their_times(chain_home):
    from onchain.market.feed import ChainFeed
    from onchain.offline.history import read_history
    from onchain.venues.v2_v3 import get_price
    from trader_core.market_data import load_candles

    bars = history_bars()
    candles = load_candles("chainlink-eth-1h")
    real = candles.slice(len(candles) - bars, len(candles))
    with pristine(chain_home) as chain:
        hist = read_history(chain)
        snaps = {v: ChainFeed(chain, venue=v).read() for v in ("v2", "v3")}
        spot = {v: get_price(chain, v).price for v in ("v2", "v3")}
    assert (hist.data, hist.bars, hist.first_bar, hist.last_bar) == (
        "chainlink-eth-1h", bars, real.timestamps[0], real.timestamps[-1])
    for venue, snap in snaps.items():
        got = snap.candles.slice(0, bars)
        assert list(got.timestamps) == list(real.timestamps), venue  # one bar per real hour, from the first on
        for field in ("high", "low", "close"):
            np.testing.assert_allclose(getattr(got, field), getattr(real, field), rtol=1e-4, err_msg=venue)
        np.testing.assert_allclose(got.open[1:], real.open[1:], rtol=1e-4, err_msg=venue)  # the previous close
        assert snap.continuous_bars >= bars and not snap.stale and snap.age_s == 0
        assert spot[venue] == pytest.approx(real.close[-1], rel=1e-4)  # the pool stands on the last close


def test_a_new_base_replica_holds_the_recorded_v4_swaps_at_their_real_times(base_chain, base_cache_home):
    from onchain.venues import v4
    from onchain.market.feed import ChainFeed
    from onchain.offline.history import read_history
    from onchain.market.v4_replay import load_swaps
    from trader_core.feed import DatasetFeed

    swaps = load_swaps()
    with pristine(base_cache_home, "base") as chain:
        hist = read_history(chain)
        snap = ChainFeed(chain).read()
        joined = ChainFeed(chain, history=DatasetFeed("chainlink-eth-1h")).read()  # the policy's 2024 data
        sqrt_now = v4.read_pool(chain)[0]
    assert joined.continuous_bars == snap.continuous_bars  # a year's gap stays a gap: nothing glued across it
    assert hist.data == "univ4-base-eth-swaps" and hist.last_bar == swaps[-1].timestamp // H * H
    assert hist.last_bar - hist.first_bar == (hist.bars - 1) * H and hist.bars <= history_bars()
    assert sqrt_now == pytest.approx(swaps[-1].sqrt_price_x96, rel=1e-12)  # the last recorded swap's price
    window = [s for s in swaps if s.timestamp >= hist.first_bar]
    hours: dict[int, list[float]] = {}
    for s in window:
        hours.setdefault(s.timestamp // H * H, []).append(v4.price_from_sqrt(s.sqrt_price_x96))
    bars = dict(zip(snap.candles.timestamps.tolist(), zip(snap.candles.high, snap.candles.low, snap.candles.close)))
    for hour, prices in hours.items():  # each recorded hour: its real close, and its real extremes
        high, low, close = bars[hour]
        assert close == pytest.approx(prices[-1], rel=1e-9)
        assert high >= max(prices) * (1 - 1e-9) and low <= min(prices) * (1 + 1e-9)
    assert snap.continuous_bars >= hist.bars and not snap.stale


def test_a_restart_from_a_saved_state_goes_on_from_the_historys_end(chain_home, tmp_path):
    from onchain.node.chain import Chain, dump_state, free_port, launch_anvil
    from onchain.market.feed import ChainFeed
    from onchain.offline.history import read_history
    from onchain.market.replay import BarReplayer
    from onchain.offline.build import resume

    with pristine(chain_home) as chain:
        hist = read_history(chain)
        stamp = hist.last_bar + 2 * H + 60  # a live swap two hours after the history
        BarReplayer(chain, ("v2",)).move_at(stamp, 2400.0)
        saved = dump_state(chain, tmp_path / "saved.json")
    mp = clean_env(chain_home)
    try:
        port = free_port()
        node = launch_anvil(port, chain_id=1, load_state=saved, log_file=tmp_path / "anvil.log", detach=False,
                            managed=False)
        try:
            again = Chain(f"http://127.0.0.1:{port}")
            jumped = again.block_timestamp()  # anvil starts a loaded state at the wall clock, years later
            assert resume(again) == hist
            clock = again.block_timestamp()
            snap = ChainFeed(again).read()
        finally:
            node.stop()
    finally:
        mp.undo()
    assert jumped > hist.last_bar + 300 * 86_400
    assert stamp < clock < stamp + H  # on from the saved head, not from the wall clock
    assert snap.last_time == stamp // H * H and snap.price == pytest.approx(2400.0, rel=1e-4) and not snap.stale
    assert snap.continuous_bars >= hist.bars + 2


def test_live_swaps_after_the_history_become_new_bars_at_their_own_times(chain_home):
    from onchain.market.feed import ChainFeed
    from onchain.offline.history import read_history
    from onchain.market.replay import BarReplayer
    from trader_core.feed import DatasetFeed

    with pristine(chain_home) as chain:
        hist = read_history(chain)
        feed = ChainFeed(chain, history=DatasetFeed("chainlink-eth-1h"), bars=hist.bars)
        before = feed.read()
        p0 = before.price
        walker = BarReplayer(chain, ("v2",))
        walker.move_at(hist.last_bar + H + 600, p0 * 1.02)  # the next hour; then an hour without a swap
        walker.move_at(hist.last_bar + 3 * H + 600, p0 * 0.99)
        after = feed.read()  # the same feed: only the new blocks are read
    c = after.candles
    tail = c.slice(len(c) - 4, len(c))
    assert list(tail.timestamps) == [hist.last_bar + k * H for k in range(4)]
    np.testing.assert_allclose(tail.close, [p0, p0 * 1.02, p0 * 1.02, p0 * 0.99], rtol=1e-4)
    assert tail.open[1:] == pytest.approx([p0, p0 * 1.02, p0 * 1.02], rel=1e-4)  # each opens at the previous close
    assert len(np.unique(c.timestamps)) == len(c) and (np.diff(c.timestamps) == H).all()  # nothing glued
    # the dataset's bars lead into the chain's own at the real hour its history starts
    first_live = int(np.searchsorted(c.timestamps, hist.first_bar))
    assert c.timestamps[first_live - 1] == hist.first_bar - H and after.live_bars == len(c) - first_live
    assert after.continuous_bars == len(c) and after.live_bars == before.live_bars + 3


def test_a_fork_reads_the_pools_history_back_far_enough_in_chunks(chain_home, tmp_path):
    from onchain.node.chain import Chain, free_port, launch_anvil
    from onchain.market.feed import ChainFeed
    from onchain.offline.history import read_history

    with pristine(chain_home) as upstream:
        hist = read_history(upstream)
        mine = ChainFeed(upstream).read().candles
        port = free_port()
        node = launch_anvil(port, fork_url=upstream.rpc_url, log_file=tmp_path / "fork.log", detach=False,
                            managed=False)
        try:
            fork = Chain(f"http://127.0.0.1:{port}")
            forked_record = read_history(fork)
            fork.rpc = capped = RangeCap(fork.rpc, max_blocks=150)  # a hosted node's getLogs range limit
            feed = ChainFeed(fork, blocks=10, bars=hist.bars, log_chunk=400)  # 10 blocks: hours are far more
            snap = feed.read()
        finally:
            node.stop()
    assert forked_record == hist
    assert capped.refused >= 2 and max(capped.spans) <= 150  # 400 refused, 200 refused, then 100 at a time
    assert feed._first > 0  # found by block time, not from genesis
    n = hist.bars
    got = snap.candles
    assert list(got.timestamps[:n]) == list(mine.timestamps[:n])
    np.testing.assert_allclose(got.close[:n], mine.close[:n], rtol=1e-12)
    assert snap.continuous_bars >= n and not snap.stale


@pytest.mark.parametrize("network", ["mainnet", "base"])
def test_trader_signal_decides_at_once_after_chain_up(network, chain_home, base_chain, base_cache_home, tmp_path):
    """`trader chain up` then `trader signal --json`: a decision of the shipped policy on the chain's real history,
    with the history's range; on mainnet also after a restart from the saved state."""
    from trader_core.market_data import load_candles

    home = seeded_home(chain_home if network == "mainnet" else base_cache_home, tmp_path / "home")
    up = trader_cli(home, "chain", "up", "--network", network, "--json")
    try:
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout)
        hist = info["history"]
        last_close = info["price"] if network == "base" else float(load_candles("chainlink-eth-1h").close[-1])
        runs = [trader_cli(home, "signal", "--json")]
        if network == "mainnet":
            assert trader_cli(home, "chain", "down").returncode == 0
            again = trader_cli(home, "chain", "up", "--json")
            assert again.returncode == 0 and json.loads(again.stdout)["restored_block"] is not None, again.stderr
            runs.append(trader_cli(home, "signal", "--json"))
    finally:
        trader_cli(home, "chain", "down")
    if network == "mainnet":
        assert hist["bars"] == history_bars()
    else:  # the recorded V4 swaps start inside the window when its first hours had none: the range is what was traded
        assert hist["bars"] <= history_bars() and hist["last_bar"] - hist["first_bar"] == (hist["bars"] - 1) * H
    for run in runs:
        assert run.returncode == 0, run.stderr
        sig = json.loads(run.stdout)
        assert sig["reason"] is None and sig["action"] == sig["policy_action"] and not sig["stale"], sig["reason"]
        assert sig["live_first_bar_time"] == hist["first_bar"] and hist["last_bar"] <= sig["bar_time"]
        assert sig["live_bars"] >= sig["needed_bars"] and sig["continuous_bars"] >= sig["needed_bars"]
        assert sig["first_bar_time"] <= hist["first_bar"] and sig["bars"] >= sig["live_bars"]
        assert sig["price"] == pytest.approx(last_close, rel=1e-4) and sig["features"]


def test_history_bars_out_of_range_is_one_line(tmp_path):
    proc = trader_cli(tmp_path, "chain", "up", "--history-bars", "-3")
    assert proc.returncode == 1 and proc.stderr.strip().startswith("error: --history-bars must be")
    assert len(proc.stderr.strip().splitlines()) == 1
