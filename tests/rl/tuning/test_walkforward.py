"""The walk-forward splitter: ordered, non-overlapping, embargoed folds that never reach the final test."""

import pytest

from rl.tuning.walkforward import walk_forward_folds
from trader_core.errors import DataError


@pytest.mark.parametrize("train_bars", [None, 1500])
def test_folds_are_ordered_disjoint_and_embargoed(train_bars):
    folds = walk_forward_folds(7000, n_folds=4, embargo=200, min_train=1500, stop=6000, train_bars=train_bars)
    assert [f.index for f in folds] == [0, 1, 2, 3]
    for f in folds:
        (ta, tb), (sa, sb) = f.train, f.test
        assert ta < tb and sa < sb
        assert sa - tb == 200  # purged: exactly the embargo between training and testing
        assert tb - ta >= 1500
        if train_bars is not None:
            assert tb - ta == train_bars  # rolling: the same length every fold
        else:
            assert ta == 0  # anchored
    for prev, nxt in zip(folds, folds[1:]):
        assert prev.test[1] == nxt.test[0]  # test windows tile without overlap
        assert nxt.train[1] <= nxt.test[0] - 200
    assert folds[-1].test[1] == 6000  # nothing reaches the final test period after `stop`
    assert folds[0].train[0] == 0 and folds[0].test[0] == 1500 + 200


def test_too_short_a_series_is_refused_with_the_reason():
    with pytest.raises(DataError, match="cannot hold 3 walk-forward folds"):
        walk_forward_folds(1000, n_folds=3, embargo=100, min_train=896)


def test_search_folds_on_bundled_data_keep_the_holdout_apart():
    from rl.tuning.fold_eval import plan_folds

    plan = plan_folds(["chainlink-eth-1h", "chainlink-btc-1h"], n_folds=3, train_bars=3000, embargo=336)
    assert plan.folds[-1].test[1] + 336 <= plan.holdout[0]
    assert plan.holdout_train[1] + 336 == plan.holdout[0]
    assert plan.holdout[1] == len(plan.timestamps)
