"""A replica chain with hours of real market history: real swaps, one per hour of (warped) block time.

`chain replay` swaps as fast as the node mines, so its whole path lands in one hourly bar. Live-feed tests need
a pool whose Swap events span many hours, so this helper sets each block's timestamp one hour after the last
(anvil's evm_setNextBlockTimestamp) and moves the V2 pool to one real close per hour with the replay's own
arbitrage step. The chain's clock ends hours ahead of the wall clock, as a chain that ran that long would.
"""

from __future__ import annotations

from contextlib import contextmanager

HOUR = 3600


def warp_hourly_swaps(chain, closes: list[float]) -> list[int]:
    """One V2 swap per close, one hour apart, starting at the next whole hour of the chain's clock; returns the
    block times used."""
    from onchain import chain as C
    from onchain.replay import replay, step_v2

    replay(chain, steps=1, venues=("v2",))  # funds and approves the arbitrage account (public API)
    arb = C.dev_account(C.ARB_ACCOUNT).address
    start = (chain.block_timestamp() // HOUR + 1) * HOUR
    stamps = []
    for i, target in enumerate(closes):
        ts = start + i * HOUR
        chain.rpc("evm_setNextBlockTimestamp", hex(ts))
        if not step_v2(chain, arb, float(target), deadline=ts + 600):
            chain.rpc("evm_mine")  # already at the target: mine an empty block so the clock still moves
        stamps.append(ts)
    return stamps


@contextmanager
def replica_with_history(home, hours: int = 120):
    """A private replica (its own anvil, always stopped) whose V2 pool walked `hours` real hourly closes."""
    from onchain import PrivateReplica
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
