"""Benchmarks against peers run in the same process (ratios, not absolute targets)."""

from __future__ import annotations

import time

import numpy as np


def _rate(step, reset, seconds: float, batch: int = 1) -> float:
    """Steps per second of `step()` over roughly `seconds`, resetting when an episode ends."""
    n, started = 0, time.perf_counter()
    while True:
        for _ in range(1000):
            if step():
                reset()
        n += 1000
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return n * batch / elapsed


def bench_env(seconds: float = 2.0, n_envs: int = 4096) -> dict:
    import gym_anytrading  # noqa: F401  (registers stocks-v0)
    import gymnasium as gym

    from rl.env import make_default_env
    from rl.vec_env import BatchedTradingEnv

    rng = np.random.default_rng(0)
    ours = make_default_env()
    ours.reset(seed=0)
    acts = rng.integers(0, ours.action_space.n, 1000).tolist()
    i = [0]

    def ours_step():
        i[0] = (i[0] + 1) % 1000
        _, _, te, tr, _ = ours.step(acts[i[0]])
        return te or tr

    peer = gym.make("stocks-v0").unwrapped  # both unwrapped: measure the envs, not gymnasium's checkers
    peer.reset(seed=0)
    peer_acts = rng.integers(0, 2, 1000).tolist()

    def peer_step():
        i[0] = (i[0] + 1) % 1000
        _, _, te, tr, _ = peer.step(peer_acts[i[0]])
        return te or tr

    batched = BatchedTradingEnv(ours.features, ours.cfg, n_envs, ours.start, ours.stop, seed=0)
    batched.reset()
    batch_acts = rng.integers(0, ours.action_space.n, (16, n_envs))

    def batched_step():
        i[0] = (i[0] + 1) % 16
        batched.step(batch_acts[i[0]])
        return False

    # interleave to share the machine's noise fairly; keep the best of two rounds each
    single = max(_rate(ours_step, lambda: ours.reset(), seconds / 2) for _ in range(2))
    anytrading = max(_rate(peer_step, lambda: peer.reset(), seconds / 2) for _ in range(2))
    vec = max(_rate(batched_step, lambda: None, seconds / 20, batch=n_envs) for _ in range(2))
    return {"ours_single": single, "ours_batched": vec, "gym_anytrading": anytrading,
            "single_ratio": single / anytrading, "batched_n_envs": n_envs}


def bench_train(timesteps: int = 6000) -> dict:
    """Same update-to-data ratio (0.25), same learning_starts, one thread policy for both."""
    import gym_anytrading  # noqa: F401
    import gymnasium as gym
    from stable_baselines3 import DQN

    from rl.config import TrainConfig
    from rl.train import _algo_class, algo_kwargs, make_train_env, prepare_market
    from trader_core.runtime import configure_torch

    configure_torch()
    learning_starts = 500
    cfg = TrainConfig(timesteps=timesteps, learning_starts=learning_starts)
    _, split, feats = prepare_market(cfg)

    def ours() -> float:
        model = _algo_class("dqn")("MlpPolicy", make_train_env(cfg, feats, split), **algo_kwargs(cfg))
        model.learn(learning_starts)  # fill the buffer first: measure steady-state training
        t = time.perf_counter()
        model.learn(timesteps, reset_num_timesteps=False)
        return timesteps / (time.perf_counter() - t)

    def sb3_peer() -> float:
        model = DQN("MlpPolicy", gym.make("stocks-v0"), learning_starts=learning_starts, seed=0, device="cpu")
        model.learn(learning_starts)
        t = time.perf_counter()
        model.learn(timesteps, reset_num_timesteps=False)
        return timesteps / (time.perf_counter() - t)

    a1, p1 = ours(), sb3_peer()
    a2, p2 = ours(), sb3_peer()
    ours_rate, peer_rate = max(a1, a2), max(p1, p2)
    return {"ours": ours_rate, "sb3_anytrading": peer_rate, "ratio": ours_rate / peer_rate,
            "utd": cfg.updates_per_transition}
