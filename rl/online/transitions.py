"""What a transition is, in the policy's own units: the env action a trade means, the reward a realised fill
earned, and the historical transitions (env rollouts on the train split) the learner mixes in.

The live reward is the env's own reward computed on the wallet: log(equity after the fill, marked at the next
bar / equity before the fill) minus `cost_penalty` x (fee + price impact + gas) / equity, times the policy's
`reward_scale` - so the learner sees exactly what trading costs here, in the units it was trained in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rl.online.replay_store import Fill


def env_action(trade: str, position: float, action_names: list[str]) -> int:
    """The env action an executed BUY/SELL/HOLD corresponds to, holding `position` (0..1 in ETH) when deciding.

    Target action sets (FLAT/LONG[/SHORT]) name positions: BUY -> LONG, SELL -> FLAT, HOLD -> the position
    already held. spot3 (HOLD/BUY/SELL) maps one to one."""
    if action_names[:3] == ["HOLD", "BUY", "SELL"]:
        return action_names.index(trade)
    if "LONG" in action_names and "FLAT" in action_names:
        held = "LONG" if position >= 0.5 else "FLAT"
        name = {"BUY": "LONG", "SELL": "FLAT"}.get(trade, held)
        return action_names.index(name)
    if all(n.startswith("TO_") for n in action_names):  # size5: exposure levels TO_0 .. TO_100
        levels = [int(n[3:]) / 100 for n in action_names]
        held = min(range(len(levels)), key=lambda i: abs(levels[i] - position))
        # a live BUY/SELL moved the wallet one level up/down at least; the level it reached is not known here
        step = {"BUY": 1, "SELL": -1}.get(trade, 0)
        return max(0, min(len(levels) - 1, held + step))
    raise ValueError(f"online learning does not map trades onto the action set {action_names}")


def live_reward(equity_before: float, equity_after: float, fill: Fill, cost_penalty: float,
                reward_scale: float, sign: float = 1.0) -> float:
    """The env's log-return reward (+ fee-aware penalty) on the real wallet, scaled as in training.

    `equity_before`: wallet value at the decision's price before the fill; `equity_after`: after the fill,
    marked at the next bar's price (the fill's fee, impact and gas are already out of it)."""
    if equity_before <= 0:
        raise ValueError(f"equity before the fill must be positive, got {equity_before}")
    r = math.log(max(equity_after, 1e-9) / equity_before)
    r -= cost_penalty * fill.cost_usd / equity_before
    return sign * reward_scale * r


@dataclass
class HistoryTransitions:
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    dones: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)


def history_transitions(policy, n: int, seed: int = 0, epsilon: float = 0.3, episode: int = 168,
                        reward_sign: float = 1.0) -> HistoryTransitions:
    """`n` transitions of the env on the policy's train split: the incumbent's greedy action, or a random one
    with probability `epsilon` (so both actions' values are learned), rewards scaled as in training."""
    from rl.envs.data import load_candles, split_by_dates

    cfg = policy.config
    candles = policy.select_columns(load_candles(cfg.data, cfg.interval))
    sp = split_by_dates(candles, cfg.train_end, cfg.val_end, gap=cfg.features.lookback)
    env = policy.env_for(policy.features_for(candles), *sp.range("train"), random_start=True)
    rng = np.random.default_rng(seed)
    obs_l, act_l, rew_l, nxt_l, done_l = [], [], [], [], []
    ep = 0
    obs, _ = env.reset(seed=seed, options={"length": episode})
    while len(act_l) < n:
        a = int(rng.integers(env.n_actions)) if rng.random() < epsilon else policy.act(obs)
        nxt, r, terminated, truncated, _ = env.step(a)
        obs_l.append(obs)
        act_l.append(a)
        rew_l.append(reward_sign * cfg.reward_scale * r)
        nxt_l.append(nxt)
        done_l.append(float(terminated))
        obs = nxt
        if terminated or truncated:
            ep += 1
            obs, _ = env.reset(seed=seed + ep, options={"length": episode})
    return HistoryTransitions(np.asarray(obs_l, np.float32), np.asarray(act_l, np.int64),
                              np.asarray(rew_l, np.float32), np.asarray(nxt_l, np.float32),
                              np.asarray(done_l, np.float32))
