"""A replica chain with hours of real market history: real swaps, one per hour of (warped) block time.

Built on `onchain.market.replay.replay_bars` (the function behind `trader chain replay --hourly`): each close's V2
swap is mined one hour of block time after the last, so the pool's candles span many hours.
"""

from __future__ import annotations

from contextlib import contextmanager

HOUR = 3600


def warp_hourly_swaps(chain, closes: list[float]) -> list[int]:
    """One V2 swap per close, one hour apart, starting at the next whole hour of the chain's clock; returns the
    block times used."""
    from onchain.market.replay import replay_bars

    return replay_bars(chain, closes, HOUR, venues=("v2",))


@contextmanager
def replica_with_history(home, hours: int = 120):
    """A private replica (its own anvil, always stopped) whose V2 pool walked `hours` real hourly closes."""
    from onchain.api import PrivateReplica
    from tests.conftest import clean_env
    from trader_core.market_data import load_candles

    closes = [float(c) for c in load_candles("chainlink-eth-1h").close[-hours:]]
    mp = clean_env(home)  # the session replica's home: its cached replica dump starts this one in a second
    try:
        with PrivateReplica() as chain:
            stamps = warp_hourly_swaps(chain, closes)
            yield chain, stamps, closes
    finally:
        mp.undo()
