"""Walk-forward folds: train on a window, test on the bars right after it, roll forward.

A fold's test window starts `embargo` bars after its training window ends (purged by the feature look-back:
no test bar's features or any training reward reach across), test windows never overlap one another, and
nothing reaches past `stop` (the start of the final test period, which the search never sees).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from trader_core.errors import DataError


@dataclass(frozen=True)
class Fold:
    """Half-open bar ranges [start, stop) into one series."""

    index: int
    train: tuple[int, int]
    test: tuple[int, int]

    def to_dict(self) -> dict:
        return asdict(self)


def walk_forward_folds(n_bars: int, n_folds: int, embargo: int, min_train: int, start: int = 0,
                       stop: int | None = None, train_bars: int | None = None) -> list[Fold]:
    """`n_folds` consecutive test windows of equal length covering the end of [start, stop).

    Each fold trains on the `train_bars` bars (rolling; None: everything since `start`, anchored) that end
    `embargo` bars before its test window. The first fold still has at least `min_train` training bars.
    """
    stop = n_bars if stop is None else min(stop, n_bars)
    if n_folds < 1 or embargo < 0 or min_train < 2:
        raise DataError(f"bad walk-forward settings: folds={n_folds}, embargo={embargo}, min_train={min_train}")
    first_test = start + min_train + embargo
    test_len = (stop - first_test) // n_folds
    if test_len < 2:
        raise DataError(f"{stop - start} bars cannot hold {n_folds} walk-forward folds after {min_train} "
                        f"training bars and an embargo of {embargo}; use fewer folds or a longer series")
    folds = []
    for k in range(n_folds):
        test_a = first_test + k * test_len
        test_b = test_a + test_len if k < n_folds - 1 else stop
        train_b = test_a - embargo
        train_a = start if train_bars is None else max(start, train_b - train_bars)
        folds.append(Fold(k, (train_a, train_b), (test_a, test_b)))
    return folds
