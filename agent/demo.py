"""`trader demo`: an end-to-end session on embedded defaults."""

from __future__ import annotations


def run_demo(quick: bool = False) -> None:
    from trader_core.market_data import DEFAULT_DATASET, load_candles

    candles = load_candles(DEFAULT_DATASET)
    print(f"loaded {len(candles)} bars of {DEFAULT_DATASET}")
