"""The deflated Sharpe ratio on a case computed by hand, and its behaviour at the edges."""

import math

import numpy as np
import pytest

from rl.tuning.overfit import deflated_sharpe, expected_max_sharpe, probabilistic_sharpe, return_moments


def test_deflated_sharpe_matches_a_hand_computed_case():
    # N = 10 trials whose per-bar Sharpe estimates vary by V = 0.0004 (sd 0.02):
    # z(1 - 1/10) = 1.281552, z(1 - 1/(10 e)) = z(0.963212) = 1.789243 (normal quantiles)
    # SR0 = 0.02 * ((1 - 0.577216) * 1.281552 + 0.577216 * 1.789243) = 0.02 * 1.574610 = 0.031492
    sr0 = expected_max_sharpe(10, 0.0004)
    assert sr0 == pytest.approx(0.031492, abs=2e-6)
    # chosen strategy: SR = 0.06 per bar over T = 1001 bars, skew -0.5, kurtosis 6
    # denominator sqrt(1 + 0.5 * 0.06 + 5/4 * 0.0036) = sqrt(1.0345) = 1.017104
    # z = (0.06 - 0.031492) * sqrt(1000) / 1.017104 = 0.886343; Phi(0.886343) = 0.812281
    assert probabilistic_sharpe(0.06, sr0, 1001, skew=-0.5, kurt=6.0) == pytest.approx(0.81228, abs=1e-4)
    # against zero instead: z = 0.06 * 31.62278 / 1.017104 = 1.865459 -> 0.968940
    assert probabilistic_sharpe(0.06, 0.0, 1001, -0.5, 6.0) == pytest.approx(0.96894, abs=1e-4)


def test_more_trials_deflate_more_and_one_trial_does_not():
    assert expected_max_sharpe(1, 0.01) == 0.0
    assert expected_max_sharpe(100, 0.01) > expected_max_sharpe(10, 0.01) > 0
    rng = np.random.default_rng(0)
    returns = rng.normal(0.0005, 0.01, 2000)
    few = deflated_sharpe(returns, 2, [0.01, 0.03], 8760)
    many = deflated_sharpe(returns, 200, list(rng.normal(0.0, 0.03, 200)), 8760)
    assert many.deflated_sharpe < few.deflated_sharpe <= few.psr_vs_zero


def test_return_moments_of_a_normal_sample():
    r = np.random.default_rng(1).normal(0.001, 0.02, 200_000)
    sr, skew, kurt, n = return_moments(r)
    assert n == 200_000 and sr == pytest.approx(0.05, abs=0.005)
    assert abs(skew) < 0.03 and kurt == pytest.approx(3.0, abs=0.05)
    assert return_moments(np.zeros(10)) == (0.0, 0.0, 3.0, 10)
    assert math.isnan(probabilistic_sharpe(0.1, 0.0, 1))
