"""Market data for RL: bundled datasets by name, continuous segments, leak-free date splits.

Loading and validation live in `trader_core.market_data` (the on-chain replica reads the same files);
this module adds what training needs: train / validation / test ranges by timestamps, separated by a
gap of at least the feature look-back so no bar's features or rewards reach across a boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trader_core.errors import DataError
from trader_core.market_data import (  # noqa: F401  (re-exported: rl.envs.data is the RL-facing entry point)
    DATASETS,
    DEFAULT_DATASET,
    Candles,
    load_candles,
    parse_time,
    segments,
)

DEFAULT_FRACTIONS = (0.70, 0.15)  # train, validation; the rest is test


@dataclass(frozen=True)
class Split:
    """Half-open bar index ranges [start, stop) into one Candles series."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]
    gap: int

    def range(self, name: str) -> tuple[int, int]:
        if name not in ("train", "val", "test", "all"):
            raise DataError(f"unknown split {name!r}; use train, val, test or all")
        return (self.train[0], self.test[1]) if name == "all" else getattr(self, name)

    def to_dict(self, candles: Candles) -> dict:
        def iso(i: int) -> str | None:
            import datetime as dt

            if i >= len(candles):
                i = len(candles) - 1
            return dt.datetime.fromtimestamp(int(candles.timestamps[i]), dt.timezone.utc).isoformat()

        return {name: {"start": iso(a), "end": iso(max(a, b - 1)), "bars": b - a}
                for name, (a, b) in (("train", self.train), ("val", self.val), ("test", self.test))}


def split_by_dates(candles: Candles, train_end: str | None = None, val_end: str | None = None,
                   gap: int = 72) -> Split:
    """Train until `train_end`, validation until `val_end`, test after; `gap` bars dropped at each boundary.

    Without dates, the first 70% of the time range trains, the next 15% validates, the rest tests.
    """
    n = len(candles)
    ts = candles.timestamps
    if train_end is None or val_end is None:
        t0, t1 = int(ts[0]), int(ts[-1])
        fr_train, fr_val = DEFAULT_FRACTIONS
        train_end_s = parse_time(train_end) if train_end else int(t0 + fr_train * (t1 - t0))
        val_end_s = parse_time(val_end) if val_end else int(t0 + (fr_train + fr_val) * (t1 - t0))
    else:
        train_end_s, val_end_s = parse_time(train_end), parse_time(val_end)
    if val_end_s <= train_end_s:
        raise DataError(f"--val-end ({val_end}) must come after --train-end ({train_end})")
    i_train = int(np.searchsorted(ts, train_end_s, side="left"))
    i_val = int(np.searchsorted(ts, val_end_s, side="left"))
    split = Split(train=(0, i_train), val=(min(n, i_train + gap), i_val), test=(min(n, i_val + gap), n), gap=gap)
    for name in ("train", "val", "test"):
        a, b = split.range(name)
        if b - a < 2 * gap:
            raise DataError(f"the {name} split has only {max(0, b - a)} bars (need >= {2 * gap} = twice the "
                            f"feature look-back); move --train-end/--val-end or use a longer series")
    return split
