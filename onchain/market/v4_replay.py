"""`trader chain replay` on Base: the real V4 swap sequence of `univ4-base-eth-swaps`, swap by swap.

Each recorded swap becomes one swap through the real Universal Router (dev account 8), sized with the pool's
own integer maths so the replica's pool lands on the recorded post-swap sqrtPriceX96: the sizes are the real
ones rescaled to the replica's liquidity (the real pool's liquidity changed over time; the replica keeps one
full-range position). Each swap is mined in its own block stamped with the swap's real timestamp
(evm_setNextBlockTimestamp). Anvil never mines into the past, so when the chain clock is already beyond the data
the whole sequence is shifted by whole weeks: spacing, time of day and weekday stay real, and the agent's candles
(Swap events bucketed by block timestamp) have the real shape.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from pydantic import BaseModel

from onchain.node import chain as C
from onchain.venues import v4
from onchain.venues import v4_swap
from onchain.venues.v4_swap import permit2_allow
from onchain.networks import BASE, BASE_UNIVERSAL_ROUTER, V4_DATASET, network_of
from onchain.node.transactions import send_as
from onchain.execution.wallet import fund
from trader_core.errors import ChainError, ConfigError, DataError

WEEK = 7 * 86_400


class SwapReplayResult(BaseModel):
    data: str
    swaps: int
    skipped: int  # recorded swaps whose price move is below one unit of output here (nothing to replay)
    start_price: float
    end_price: float
    target_end: float
    max_error_bps: float
    first_timestamp: int
    last_timestamp: int
    time_offset_s: int
    liquidity_ratio: float  # replica liquidity / the real pool's at the last swap (the size rescaling)


@dataclass(frozen=True)
class RecordedSwap:
    block: int
    timestamp: int
    sqrt_price_x96: int
    amount0: int
    liquidity: int


def load_swaps(data: str | None = None) -> list[RecordedSwap]:
    """A V4 swap-event CSV (the bundled one by default) in chain order: by block, then file order."""
    import pandas as pd

    from trader_core.market_data import resolve_dataset

    path, _ = resolve_dataset(data or V4_DATASET)
    try:
        frame = pd.read_csv(path, dtype=str)
        frame.columns = [c.strip().lower() for c in frame.columns]
        rows = [RecordedSwap(int(b), int(t), int(s), int(a), int(liq)) for b, t, s, a, liq in zip(
            frame["block_number"], frame["timestamp"], frame["sqrt_price_x96"], frame["amount0"], frame["liquidity"])]
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: not a V4 swap-event file (block_number, timestamp, sqrt_price_x96, amount0, "
                        f"liquidity as integers): {type(exc).__name__}: {exc}") from None
    if not rows:
        raise DataError(f"{path}: no swaps")
    if any(not (v4.MIN_SQRT_PRICE < r.sqrt_price_x96 < v4.MAX_SQRT_PRICE) for r in rows):
        raise DataError(f"{path}: sqrt_price_x96 outside the valid V4 range")
    return sorted(rows, key=lambda r: r.block)  # stable: same-block swaps keep their file order


def time_offset(first_timestamp: int, chain_now: int) -> int:
    """0 if the recorded times are still ahead of the chain clock, else the fewest whole weeks that are."""
    if first_timestamp > chain_now:
        return 0
    return math.ceil((chain_now + 1 - first_timestamp) / WEEK) * WEEK


def _prepare(chain: C.Chain, arb: str) -> None:
    fund(chain, arb, eth=1e9, usdc=1e12)
    permit2_allow(chain, arb, BASE_UNIVERSAL_ROUTER)


def _swap_to(chain: C.Chain, arb: str, sqrt_p: int, liquidity: int, target: int, deadline: int,
             stamp: int | None = None) -> bool:
    """One Universal Router swap that moves the pool from sqrt_p to target (single full-range liquidity), mined
    at block time `stamp` if given; False (nothing sent) when the move is too small to pay out a single unit."""
    if target == sqrt_p:
        return False
    zero_for_one, amount_in = v4.input_to_reach(sqrt_p, target, liquidity)
    expected_out, _ = v4.swap_exact_in(sqrt_p, liquidity, amount_in, zero_for_one)
    if expected_out <= 0:
        return False
    min_out = max(1, expected_out * 99 // 100)  # the replay bot keeps a slippage bound too
    data = v4_swap.swap_call(zero_for_one, amount_in, min_out, deadline)
    if stamp is not None:
        chain.rpc("evm_setNextBlockTimestamp", stamp)
    send_as(chain, arb, BASE_UNIVERSAL_ROUTER, data, value=amount_in if zero_for_one else 0, gas=600_000)
    return True


def walk_pool(chain: C.Chain, targets: list[tuple[int, int]]) -> int:
    """Move the pool through (block time, sqrtPriceX96) targets in order, each swap mined at exactly its block
    time (dev account 8 through the Universal Router); returns the swaps mined (a target the pool already sits at,
    or one too close to pay out a unit, needs none)."""
    arb = C.dev_account(C.ARB_ACCOUNT).address
    _prepare(chain, arb)
    sqrt_p, _, liquidity = v4.read_pool(chain)
    swaps = 0
    for stamp, target in targets:
        if _swap_to(chain, arb, sqrt_p, liquidity, target, stamp + 600, stamp):
            swaps += 1
            sqrt_p = v4.read_pool(chain)[0]
    return swaps


def replay_swaps(chain: C.Chain, data: str | None = None, steps: int = 50, speed: float = 0.0) -> SwapReplayResult:
    """Replay the last `steps` recorded swaps (`speed` swaps per second, 0 = as fast as the node mines)."""
    if not chain.local:
        raise ChainError(f"replay only runs on a local anvil node, not on {chain.describe()}")
    if network_of(chain) is not BASE:
        raise ConfigError("the V4 swap replay needs the Base replica; start it with `trader chain up --network base`")
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}")
    if speed < 0 or not math.isfinite(speed):
        raise ConfigError(f"--speed must be >= 0 swaps per second, got {speed}")
    recorded = load_swaps(data)
    rows = recorded[-steps:]
    arb = C.dev_account(C.ARB_ACCOUNT).address
    _prepare(chain, arb)
    sqrt_p, _, liquidity = v4.read_pool(chain)
    start_price = v4.price_from_sqrt(sqrt_p)
    offset = time_offset(rows[0].timestamp, chain.block_timestamp())
    # start where the real pool stood just before the first replayed swap
    before = recorded[-steps - 1].sqrt_price_x96 if len(recorded) > steps else None
    if before is not None and _swap_to(chain, arb, sqrt_p, liquidity, before, chain.block_timestamp() + 3600):
        sqrt_p = v4.read_pool(chain)[0]
    swaps = skipped = 0
    worst = 0.0
    for i, row in enumerate(rows):
        t0 = time.monotonic()
        stamp = row.timestamp + offset
        if not _swap_to(chain, arb, sqrt_p, liquidity, row.sqrt_price_x96, stamp + 600, stamp):
            skipped += 1
            continue
        swaps += 1
        sqrt_p = v4.read_pool(chain)[0]
        worst = max(worst, abs(v4.price_from_sqrt(sqrt_p) / v4.price_from_sqrt(row.sqrt_price_x96) - 1) * 1e4)
        if speed > 0 and i + 1 < len(rows):
            time.sleep(max(0.0, 1.0 / speed - (time.monotonic() - t0)))
    last = rows[-1]
    return SwapReplayResult(
        data=str(data or V4_DATASET), swaps=swaps, skipped=skipped, start_price=start_price,
        end_price=v4.price_from_sqrt(sqrt_p), target_end=v4.price_from_sqrt(last.sqrt_price_x96),
        max_error_bps=worst, first_timestamp=rows[0].timestamp + offset, last_timestamp=last.timestamp + offset,
        time_offset_s=offset, liquidity_ratio=liquidity / last.liquidity if last.liquidity else float("nan"),
    )
