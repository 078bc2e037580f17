"""Ensemble decisions: majority vote, ties broken by the mean Q, agreement and Q-margin reported as they are."""

import numpy as np
import pytest

from rl.training.ensemble import decide


def test_majority_vote_and_agreement():
    q = np.array([[0.0, 1.0, 0.2],   # votes 1
                  [0.0, 0.9, 0.3],   # votes 1
                  [0.0, 0.1, 2.0]])  # votes 2 (and drags the mean Q of action 2 above action 1)
    d = decide(q, "vote")
    assert d.action == 1 and d.votes == [1, 1, 2]
    assert d.agreement == pytest.approx(2 / 3)
    assert d.q_margin == pytest.approx(q[:, 1].mean() - q[:, 2].mean())  # negative: the vote beat the mean Q
    m = decide(q, "mean_q")
    assert m.action == 2 and m.agreement == pytest.approx(1 / 3) and m.q_margin > 0


def test_a_tied_vote_goes_to_the_higher_mean_q():
    q = np.array([[1.0, 0.0], [0.0, 3.0]])
    d = decide(q)
    assert d.action == 1 and d.agreement == 0.5


def test_a_single_model_agrees_with_itself_and_reports_its_margin():
    d = decide(np.array([0.2, 0.5, -0.1]))
    assert d.action == 1 and d.agreement == 1.0 and d.q_margin == pytest.approx(0.3)
