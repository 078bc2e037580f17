"""The online learner: Double DQN with prioritised replay over the replay store, beside the decision loop.

Why a Q-learner even for the bundled A2C ensemble: online TD learning from single off-policy transitions (the
fills of whatever policy served) needs an off-policy value method; A2C/PPO are on-policy and would learn from
another policy's actions wrongly. So the learner trains a DQN-family candidate on the same observation and
action set, starting from the incumbent's training data (env rollouts on the train split) plus every live fill;
it serves only when the gate says it is no worse than the incumbent on the most recent held-out window.

`Learner` is the synchronous core (ingest, step, checkpoint, candidate); `rl.online.worker` runs it in its own
process beside the loop. The decision path never waits on it: the loop only appends rows to SQLite and reads a
version number.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from rl.online.per import PrioritizedReplay
from rl.online.replay_store import ReplayStore
from rl.training.served_q import QModel, q_network
from trader_core.errors import ModelError
from trader_core.paths import atomic_write_bytes


class LearnerConfig(BaseModel):
    hidden: list[int] = Field([64, 64], description="Q-network hidden layers")
    lr: float = Field(5e-4, gt=0, lt=1)
    gamma: float = Field(0.9, ge=0, lt=1, description="discount (the incumbent's, when it has one)")
    batch_size: int = Field(64, ge=1, le=4096)
    capacity: int = Field(100_000, ge=64, description="prioritised buffer slots")
    alpha: float = Field(0.6, ge=0, le=1)
    beta: float = Field(0.4, ge=0, le=1)
    target_every: int = Field(250, ge=1, description="steps between target-network copies")
    checkpoint_every: int = Field(200, ge=1, description="steps between auto-saves of the learner")
    candidate_every: int = Field(1000, ge=1, description="steps between candidates put to the gate")
    history: int = Field(5000, ge=0, description="transitions from the train split mixed in")
    reward_sign: float = Field(1.0, description="-1 flips rewards: a deliberately broken learner (gate tests)")
    step_pause_s: float = Field(0.001, ge=0, le=1, description="pause between gradient steps: leaves the cores "
                                "to the decision loop")
    seed: int = 0
    nice: int = Field(10, ge=0, le=19, description="niceness of the learner's process: at 10 the decision loop "
                      "comes first on busy cores; 0 gives learning an equal share (a dedicated machine, tests)")


def load_candidate(path: Path) -> QModel:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        net = q_network(int(ck["obs_dim"]), int(ck["n_actions"]), [int(h) for h in ck["hidden"]])
        net.load_state_dict(ck["q"])
    except Exception as exc:
        raise ModelError(f"cannot load candidate {path}: {exc}") from None
    return QModel(net)


def _save_torch(path: Path, obj: dict) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


class Learner:
    def __init__(self, store: ReplayStore, obs_dim: int, n_actions: int, cfg: LearnerConfig, state_path: Path):
        self.store, self.cfg, self.state_path = store, cfg, Path(state_path)
        self.obs_dim, self.n_actions = obs_dim, n_actions
        torch.manual_seed(cfg.seed)
        self.q = q_network(obs_dim, n_actions, cfg.hidden)
        self.target = q_network(obs_dim, n_actions, cfg.hidden)
        self.opt = torch.optim.Adam(self.q.parameters(), lr=cfg.lr)
        self.per = PrioritizedReplay(cfg.capacity, cfg.alpha, cfg.beta)
        self.rng = np.random.default_rng(cfg.seed)
        n = cfg.capacity
        self._obs = np.zeros((n, obs_dim), np.float32)
        self._next = np.zeros((n, obs_dim), np.float32)
        self._act = np.zeros(n, np.int64)
        self._rew = np.zeros(n, np.float32)
        self._done = np.zeros(n, np.float32)
        self.step = 0
        self.last_id = 0
        self.last_loss = self.last_td = float("nan")
        self._resume()

    # -- state: the store holds the transitions, learner.pt the networks, the store's meta the step ---------
    def _resume(self) -> None:
        if self.state_path.exists():
            try:
                ck = torch.load(self.state_path, map_location="cpu", weights_only=True)
                self.q.load_state_dict(ck["q"])
                self.target.load_state_dict(ck["target"])
                self.opt.load_state_dict(ck["opt"])
                self.step = int(ck["step"])
            except Exception as exc:
                raise ModelError(f"learner state {self.state_path} is damaged ({exc}); move it aside to restart "
                                 "the learner from the replay store") from None
        else:
            self.target.load_state_dict(self.q.state_dict())
        self._saved_priorities = self.store.priorities()  # applied as the rows are ingested

    def save(self) -> None:
        _save_torch(self.state_path, {"q": self.q.state_dict(), "target": self.target.state_dict(),
                                      "opt": self.opt.state_dict(), "step": self.step})
        self.store.save_learner({"learner_step": str(self.step)}, self.per.state())

    def ingest(self, live_before_bar: int | None = None) -> int:
        """Add the store's complete transitions not seen yet to the prioritised buffer; returns how many."""
        ids = self.store.ready_ids(self.last_id, live_before_bar)
        if not ids:
            return 0
        added = 0
        for chunk in range(0, len(ids), 2048):
            part = ids[chunk:chunk + 2048]
            b = self.store.batch(part)
            for j, rid in enumerate(part):
                if rid in self.per.slot_of:  # seen before a held-out row: keep its learned priority
                    continue
                slot = self.per.add(rid, self._saved_priorities.pop(rid, None))
                added += 1
                self._obs[slot], self._next[slot] = b.obs[j], b.next_obs[j]
                self._act[slot], self._rew[slot], self._done[slot] = b.actions[j], b.rewards[j], b.dones[j]
        # rows not ready yet (no next observation, or held out for the gate) are picked up on a later call
        pending = self.store.first_pending_id(self.last_id, live_before_bar)
        self.last_id = ids[-1] if pending is None else min(ids[-1], pending - 1)
        return added

    # -- one gradient step ---------------------------------------------------------------------------------
    def train_step(self) -> float | None:
        if len(self.per) < self.cfg.batch_size:
            return None
        s = self.per.sample(self.cfg.batch_size, self.rng)
        slots = s.slots
        obs = torch.from_numpy(self._obs[slots])
        nxt = torch.from_numpy(self._next[slots])
        act = torch.from_numpy(self._act[slots])
        rew = torch.from_numpy(self._rew[slots]) * self.cfg.reward_sign
        done = torch.from_numpy(self._done[slots])
        w = torch.as_tensor(s.weights, dtype=torch.float32)
        with torch.no_grad():  # Double DQN: the online net picks, the target net values
            best = self.q(nxt).argmax(dim=1, keepdim=True)
            target = rew + (1.0 - done) * self.cfg.gamma * self.target(nxt).gather(1, best).squeeze(1)
        current = self.q(obs).gather(1, act.view(-1, 1)).squeeze(1)
        td = target - current
        loss = (w * F.smooth_l1_loss(current, target, reduction="none")).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.q.parameters(), 10.0)
        self.opt.step()
        td_abs = td.detach().abs().numpy()
        self.per.update_from_td(slots, td_abs)
        self.step += 1
        if self.step % self.cfg.target_every == 0:
            self.target.load_state_dict(self.q.state_dict())
        self.last_loss, self.last_td = float(loss.detach()), float(td_abs.mean())
        return self.last_loss

    def write_candidate(self, folder: Path) -> Path:
        path = Path(folder) / f"step_{self.step:08d}.pt"
        _save_torch(path, {"q": self.q.state_dict(), "obs_dim": self.obs_dim, "n_actions": self.n_actions,
                           "hidden": list(self.cfg.hidden), "step": self.step})
        return path
