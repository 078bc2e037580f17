"""A trained DQN member as serving needs it: the Q-network alone, rebuilt from the weights in its model.zip.

SB3's `DQN.load` rebuilds the whole algorithm, optimizer included, and the first optimizer a process builds
imports torch._dynamo (2-4 s of CPU on 2 cores). A decision only ever runs the Q-network, so every `trader ask`
or `trader signal` paid that for nothing. The network built here is the one SB3 builds (`create_mlp`: Linear and
ReLU layers, FlattenExtractor in front, which is the identity on our 1-D observations) and its weights load with
`strict=True`, so a zip whose network differs is refused rather than half-loaded; `served_q_net` returns None for
anything that is not a plain DQN MLP (QR-DQN, PPO, A2C, a custom activation), and the caller uses SB3's loader.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

_PREFIX = "q_net.q_net."  # DQNPolicy.q_net (QNetwork) .q_net (the MLP)
_PLAIN_KWARGS = {"net_arch", "optimizer_kwargs", "optimizer_class"}  # what changes nothing about the forward pass


class QModel:
    """A model as `rl.training.algos.q_values` reads it: an object with a `q_net` taking a (batch, obs) tensor.
    Served DQN members and the online learner's candidates are both this."""

    def __init__(self, q_net):
        self.q_net = q_net.eval()


def q_network(obs_dim: int, n_actions: int, hidden: list[int]):
    """The MLP of SB3's DQN (`create_mlp`): Linear layers with ReLU between, none after the last."""
    from torch import nn

    layers: list[nn.Module] = []
    last = obs_dim
    for h in hidden:
        layers += [nn.Linear(last, h), nn.ReLU()]
        last = h
    layers.append(nn.Linear(last, n_actions))
    return nn.Sequential(*layers)


def served_q_net(path: str | Path) -> QModel | None:
    """The DQN's Q-network from `path` (an SB3 model.zip), or None when it is not a plain DQN MLP."""
    with zipfile.ZipFile(path) as zf:
        data = json.loads(zf.read("data"))
        if not _plain_dqn(data):
            return None
        weights = zf.read("policy.pth")
    import torch

    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    mlp = {k[len(_PREFIX):]: v for k, v in state.items() if k.startswith(_PREFIX)}
    layers = sorted({int(k.split(".")[0]) for k in mlp})
    if not layers or layers != list(range(0, 2 * len(layers), 2)):  # Linear at 0, 2, 4 ... with ReLU between
        return None
    shapes = [tuple(mlp[f"{i}.weight"].shape) for i in layers]  # (out, in) per Linear
    net = q_network(shapes[0][1], shapes[-1][0], [out for out, _ in shapes[:-1]])
    net.load_state_dict(mlp, strict=True)
    return QModel(net)


def _plain_dqn(data: dict) -> bool:
    policy = data.get("policy_class") or {}
    if policy.get("__module__") != "stable_baselines3.dqn.policies" or "make_q_net" not in policy:
        return False
    kwargs = data.get("policy_kwargs") or {}
    if set(kwargs) - _PLAIN_KWARGS:  # an activation, a features extractor, normalisation: SB3 knows them
        return False
    obs = data.get("observation_space") or {}
    return "box.Box" in obs.get(":type:", "") and len(obs.get("_shape") or []) == 1
