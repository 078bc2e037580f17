"""Several trained models deciding together: a majority vote (ties broken by the mean Q) or the mean Q.

What a decision reports, truthfully: `agreement` is the share of members whose own greedy action is the
chosen one (1.0 for a single model); `q_margin` is how far the chosen action's mean Q-value (logit for
PPO/A2C) lies above the best other action's, in the network's own units (rewards were scaled by
`reward_scale`). Neither is a calibrated probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from rl.training.algos import q_values

Rule = Literal["vote", "mean_q"]


@dataclass
class EnsembleDecision:
    action: int
    agreement: float
    q_margin: float
    q_mean: np.ndarray
    votes: list[int]


def decide(q_rows: np.ndarray, rule: Rule = "vote") -> EnsembleDecision:
    """The ensemble's action from each member's Q-values (one row per member)."""
    q_rows = np.atleast_2d(np.asarray(q_rows, dtype=float))
    k, n = q_rows.shape
    votes = q_rows.argmax(axis=1)
    counts = np.bincount(votes, minlength=n)
    q_mean = q_rows.mean(axis=0)
    if rule == "vote":
        tied = counts == counts.max()
        action = int(np.argmax(np.where(tied, q_mean, -np.inf)))
    else:
        action = int(np.argmax(q_mean))
    others = np.delete(q_mean, action)
    margin = float(q_mean[action] - others.max()) if len(others) else 0.0
    return EnsembleDecision(action, float(counts[action] / k), margin, q_mean, votes.tolist())


def member_q_values(models: list, obs: np.ndarray) -> np.ndarray:
    return np.stack([q_values(m, obs) for m in models])


def ensemble_action_fn(models: list, rule: Rule = "vote"):
    """The ensemble's decision rule in the `rl.training.evaluate.ActionFn` shape."""
    if len(models) == 1:
        from rl.training.algos import model_action_fn

        return model_action_fn(models[0])
    return lambda obs, env: decide(member_q_values(models, obs), rule).action
