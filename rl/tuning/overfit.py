"""How much of a searched recipe's Sharpe is luck: the probabilistic and the deflated Sharpe ratio.

Bailey & López de Prado (2012, 2014). All Sharpe ratios here are per bar (not annualised). With N trials
whose Sharpe estimates vary by V, the best of N pure-noise strategies is expected to reach

    SR0 = sqrt(V) * ((1 - g) * z(1 - 1/N) + g * z(1 - 1/(N e)))        (g: Euler-Mascheroni constant)

and the deflated Sharpe ratio is the probability that the true Sharpe beats SR0, given T observations of
returns with skewness s and kurtosis k (3 for a normal distribution):

    DSR = Phi((SR - SR0) * sqrt(T - 1) / sqrt(1 - s * SR + (k - 1) / 4 * SR^2))
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def return_moments(returns: np.ndarray) -> tuple[float, float, float, int]:
    """(per-bar Sharpe, skewness, kurtosis (3 = normal), number of observations) of a return series."""
    r = np.asarray(returns, dtype=float)
    n = len(r)
    sd = r.std()
    if n < 2 or sd < 1e-15:
        return 0.0, 0.0, 3.0, n
    z = (r - r.mean()) / sd
    return float(r.mean() / r.std(ddof=1)), float(np.mean(z**3)), float(np.mean(z**4)), n


def probabilistic_sharpe(sr: float, sr_benchmark: float, n_obs: int, skew: float = 0.0, kurt: float = 3.0) -> float:
    """P(true Sharpe > sr_benchmark) given the estimate `sr` from `n_obs` returns (PSR)."""
    if n_obs < 2:
        return float("nan")
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if denom <= 0:
        return float("nan")
    return _N.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """SR0: the Sharpe the best of `n_trials` skill-less trials is expected to reach by luck."""
    if n_trials < 2 or sr_variance <= 0:
        return 0.0
    g = EULER_GAMMA
    return math.sqrt(sr_variance) * ((1 - g) * _N.inv_cdf(1 - 1 / n_trials)
                                     + g * _N.inv_cdf(1 - 1 / (n_trials * math.e)))


@dataclass
class DeflatedSharpe:
    sharpe: float  # per bar
    sharpe_annualised: float
    n_obs: int
    skew: float
    kurtosis: float
    n_trials: int
    trial_sharpe_variance: float
    expected_max_sharpe: float  # SR0, per bar
    psr_vs_zero: float  # P(true Sharpe > 0), no correction for the search
    deflated_sharpe: float  # P(true Sharpe > SR0): corrected for the number of trials

    def to_dict(self) -> dict:
        return asdict(self)


def deflated_sharpe(returns: np.ndarray, n_trials: int, trial_sharpes: list[float],
                    periods_per_year: float) -> DeflatedSharpe:
    """DSR of the chosen strategy's out-of-sample `returns`, given all trials' per-bar Sharpe ratios."""
    return deflated_sharpe_from_moments(*return_moments(returns), n_trials, trial_sharpes, periods_per_year)


def deflated_sharpe_from_moments(sr: float, skew: float, kurt: float, n: int, n_trials: int,
                                 trial_sharpes: list[float], periods_per_year: float) -> DeflatedSharpe:
    """`deflated_sharpe` from the return series' moments (what a study stores per trial)."""
    var = float(np.var(trial_sharpes, ddof=1)) if len(trial_sharpes) > 1 else 0.0
    sr0 = expected_max_sharpe(n_trials, var)
    return DeflatedSharpe(sr, sr * math.sqrt(periods_per_year), n, skew, kurt, n_trials, var, sr0,
                          probabilistic_sharpe(sr, 0.0, n, skew, kurt),
                          probabilistic_sharpe(sr, sr0, n, skew, kurt))
