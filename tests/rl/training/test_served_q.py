"""Serving a DQN loads its Q-network alone: the same Q-values as SB3's full loader, bit for bit, without SB3's
optimizer (whose first construction imports torch._dynamo, seconds per `trader ask` process); anything that is
not a plain DQN MLP is left to SB3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rl.policy import DEFAULT_RUN
from rl.training.algos import algo_class
from rl.training.served_q import QModel, served_q_net

ROOT = Path(__file__).resolve().parents[3]


def _q(model, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.q_net(torch.as_tensor(obs, dtype=torch.float32)).numpy()


def test_every_default_member_gives_sb3s_q_values_exactly():
    members = sorted(DEFAULT_RUN.glob("seed_*/model.zip"))
    assert members
    obs = np.random.default_rng(0).normal(0, 2, size=(500, 23)).astype(np.float32)
    for zip_path in members:
        served = served_q_net(zip_path)
        assert isinstance(served, QModel), zip_path
        sb3 = algo_class("dqn").load(zip_path, device="cpu")
        assert np.array_equal(_q(served, obs), _q(sb3, obs)), zip_path


@pytest.mark.parametrize("kwargs", [{"net_arch": [7]}, {"net_arch": [16, 8, 4]}])
def test_any_plain_dqn_mlp_is_served_exactly(tmp_path, kwargs):
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    model = algo_class("dqn")("MlpPolicy", env, policy_kwargs=kwargs, seed=1)
    model.save(tmp_path / "m.zip")
    obs = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    served = served_q_net(tmp_path / "m.zip")
    assert served is not None and np.array_equal(_q(served, obs), _q(model, obs))


def test_what_is_not_a_plain_dqn_mlp_is_left_to_sb3(tmp_path):
    import gymnasium as gym
    from stable_baselines3 import A2C

    env = gym.make("CartPole-v1")
    algo_class("dqn")("MlpPolicy", env, policy_kwargs={"activation_fn": torch.nn.Tanh}).save(tmp_path / "tanh.zip")
    A2C("MlpPolicy", env).save(tmp_path / "a2c.zip")
    assert served_q_net(tmp_path / "tanh.zip") is None  # a Tanh network rebuilt with ReLU would decide otherwise
    assert served_q_net(tmp_path / "a2c.zip") is None


def test_loading_the_default_policy_builds_no_optimizer():
    """In a fresh process (this one has long imported torch._dynamo): the policy decides, dynamo stays out."""
    code = ("import sys; from rl.policy import Policy; p = Policy.load('default'); "
            "import numpy as np; from rl.training.ensemble import member_q_values; "
            "member_q_values(p.models, np.zeros(len(p.observation_names), dtype=np.float32)); "
            "print(type(p.model).__name__, 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["QModel", "False"]
