"""The SB3 algorithm classes by name: one registry that training, policies and benchmarks all read."""

from __future__ import annotations

import numpy as np

from trader_core.errors import ConfigError, DependencyMissing

ALGOS = ("dqn", "qrdqn", "ppo", "a2c")


def algo_class(algo: str):
    """The SB3 class that trains `algo` (dqn is our FastDQN: SB3's DQN with a leaner train loop)."""
    if algo == "qrdqn":
        try:
            from sb3_contrib import QRDQN
        except ImportError as exc:
            raise DependencyMissing("qrdqn needs sb3-contrib: pip install sb3-contrib") from exc
        return QRDQN
    if algo == "dqn":
        from rl.training.fast_dqn import FastDQN

        return FastDQN
    if algo in ("ppo", "a2c"):
        import stable_baselines3 as sb3

        return sb3.PPO if algo == "ppo" else sb3.A2C
    raise ConfigError(f"unknown algorithm {algo!r}; choose one of: {', '.join(ALGOS)}")


def q_values(model, obs: np.ndarray) -> np.ndarray:
    """Q-values (DQN), mean quantiles (QR-DQN) or action logits (PPO/A2C) for one observation."""
    import torch

    with torch.no_grad():
        obs_t = torch.as_tensor(obs, dtype=torch.float32).reshape(1, -1)
        if hasattr(model, "quantile_net"):
            return model.quantile_net(obs_t).mean(dim=1)[0].numpy()
        if hasattr(model, "q_net"):
            return model.q_net(obs_t)[0].numpy()
        return model.policy.get_distribution(obs_t).distribution.logits[0].numpy()


def model_action_fn(model):
    """Greedy decision rule of an SB3 model, in the `rl.training.evaluate.ActionFn` shape."""
    return lambda obs, env: int(np.argmax(q_values(model, obs)))
