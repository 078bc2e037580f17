"""A trained policy as the rest of the toolkit sees it: `Policy.load(run_dir).signal(...)`.

Signals are built through the same `TradingEnv` observation code as training and backtests. Safety switch
(seed 001): on NaN features, an unexpected state or any model error the policy answers HOLD with the reason.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel

from rl.config import TrainConfig
from trader_core.errors import ModelError

DEFAULT_RUN = Path(__file__).parent / "default_policy"
PRICE_CHANGE_BARS = 24


class Signal(BaseModel):
    """The policy's decision for one bar."""

    action: Literal["BUY", "SELL", "HOLD"]
    confidence: float
    q_values: list[float]
    features: dict[str, float]
    reason: str | None = None  # set when the safety switch forced HOLD
    timestamp: int
    price: float
    raw_action: str  # the action-set name (e.g. ENTER_LONG); `action` maps it to BUY/SELL/HOLD
    observation: dict[str, float] = {}  # the exact vector the network saw, by `Policy.observation_names`


class Decision(BaseModel):
    """One state the policy acted on during a rollout (the fine-tune pipeline distils these)."""

    timestamp: int
    price: float
    volume: float | None
    volatility: float
    price_change: float
    eth: float
    usdc: float
    action: Literal["BUY", "SELL", "HOLD"]
    confidence: float
    q_values: list[float]
    features: dict[str, float]
    observation: dict[str, float] = {}  # the exact vector the network saw, by `Policy.observation_names`


def resolve_run(run: str | Path | None) -> Path:
    """'default' or None -> the bundled policy; anything else must be a run directory."""
    if run is None or str(run) == "default":
        run = DEFAULT_RUN
    path = Path(run).expanduser()
    seeds = sorted(p for p in path.glob("seed_*") if (p / "metrics.json").exists()) if path.is_dir() else []
    if seeds and not (path / "config.json").exists():
        # a multi-seed parent: use the seed with the best validation Sharpe (never the test split)
        return max(seeds, key=_validation_sharpe)
    if not (path / "config.json").exists():
        raise ModelError(f"{path} is not a training run (no config.json); train one with "
                         "`trader rl train --out DIR` or use --run default")
    return path


def _validation_sharpe(run_dir: Path) -> float:
    best = json.loads((run_dir / "metrics.json").read_text()).get("best_validation") or {}
    return float(best.get("val_sharpe", float("-inf")))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - np.max(x))
    return z / z.sum()


def to_trade_action(targets: list[list[int]], action: int, position: int) -> Literal["BUY", "SELL", "HOLD"]:
    """What an action means for an ETH holder in `position`: BUY (more ETH), SELL (less ETH) or HOLD.

    Uses the env's own transition table, so a no-op (SELL while holding no ETH, BUY while long) is HOLD,
    exactly as the env executes it.
    """
    from rl.env import KEEP

    target = targets[action][position + 1]
    if target == KEEP or target == position:
        return "HOLD"
    return "BUY" if target > position else "SELL"


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
    """Greedy decision rule of an SB3 model, in the `rl.evaluate.ActionFn` shape."""
    return lambda obs, env: int(np.argmax(q_values(model, obs)))


class Policy:
    """A loaded run: model + the config and feature scaler it was trained with."""

    def __init__(self, model, config: TrainConfig, run_dir: Path) -> None:
        self.model, self.config, self.run_dir = model, config, run_dir
        meta = json.loads((run_dir / "features.json").read_text())
        from rl.features import Scaler

        self.scaler = Scaler(**meta["scaler"])
        self.feature_names: list[str] = meta["names"]
        self.action_names = config.env.action_names
        from rl.env import target_table

        self._targets = target_table(config.env)

    @property
    def observation_names(self) -> list[str]:
        """Names of the observation vector's entries, in order: market features (scaled), account state,
        then the previous action one-hot as `prev_<ACTION>`."""
        from rl.env import ACCOUNT_FEATURES

        return [*self.feature_names, *ACCOUNT_FEATURES, *(f"prev_{a}" for a in self.action_names)]

    def _named(self, obs: np.ndarray) -> dict[str, float]:
        return {name: float(v) for name, v in zip(self.observation_names, np.asarray(obs).ravel())}

    @classmethod
    def load(cls, run: str | Path | None = "default", which: Literal["best", "last"] = "best") -> "Policy":
        from rl.train import _algo_class, load_train_config
        from trader_core.runtime import configure_torch

        run_dir = resolve_run(run)
        cfg = load_train_config(run_dir)
        path = run_dir / ("best_model.zip" if which == "best" else "model.zip")
        if not path.exists():
            path = run_dir / "model.zip"
        if not path.exists():
            raise ModelError(f"{run_dir} has no model.zip; the training run did not finish")
        configure_torch()
        try:
            model = _algo_class(cfg.algo).load(path, device="cpu")
        except Exception as exc:  # corrupted zip, incompatible SB3 version, ...
            raise ModelError(f"cannot load {path}: {exc}") from exc
        return cls(model, cfg, run_dir)

    # -- features and environment built exactly as in training ---------------------------------------------
    def features_for(self, candles=None):
        from rl.data import load_candles
        from rl.features import build_features

        candles = candles if candles is not None else load_candles(self.config.data, self.config.interval)
        return build_features(candles, self.config.features, scaler=self.scaler)

    def env_for(self, feats, start: int = 0, stop: int | None = None, random_start: bool = False):
        from rl.env import TradingEnv

        return TradingEnv(feats, self.config.env, start, stop, random_start=random_start)

    def act(self, obs: np.ndarray) -> int:
        return int(np.argmax(q_values(self.model, obs)))

    def _explain(self, feats, t: int, env) -> dict[str, float]:
        c = feats.candles
        out = {name: float(v) for name, v in zip(feats.names, feats.raw[t]) if not name.startswith("ret_")}
        back = max(0, t - PRICE_CHANGE_BARS)
        out["price"] = float(c.close[t])
        out["price_change_24"] = float(c.close[t] / c.close[back] - 1.0)
        out["last_return"] = float(np.log(c.close[t] / c.close[t - 1])) if t > 0 else float("nan")
        out.update(env.account_state())
        return out

    # -- the decision for the latest bar -------------------------------------------------------------------
    def signal(self, candles=None, position: float = 0.0) -> Signal:
        """Decision for the last bar of `candles` (default: the run's dataset) holding `position` (0..1 in ETH)."""
        feats = self.features_for(candles)
        t = len(feats.candles) - 1
        ts, price = int(feats.candles.timestamps[t]), float(feats.candles.close[t])
        n = len(self.action_names)

        def hold(reason: str, q=None) -> Signal:
            return Signal(action="HOLD", confidence=0.0, q_values=list(q if q is not None else [0.0] * n),
                          features={}, reason=reason, timestamp=ts, price=price, raw_action="HOLD")

        if not (isinstance(position, (int, float)) and math.isfinite(position) and -1.0 <= position <= 1.0):
            return hold(f"unexpected position {position!r}: expected a fraction of the portfolio in ETH, -1..1")
        pos = 1 if position >= 0.5 else (-1 if position <= -0.5 and self.config.env.allow_short else 0)
        if not feats.valid[t]:
            return hold(f"features are not finite at the latest bar (need {self.config.features.lookback} bars "
                        "of continuous history)")
        try:
            env = self.env_for(feats)
            obs = env.observe(t, pos)
            q = q_values(self.model, obs)
            if not np.isfinite(q).all():
                return hold("model produced non-finite Q-values")
        except Exception as exc:  # the safety switch: any model error means HOLD, never a crash
            return hold(f"model error: {exc}")
        a = int(np.argmax(q))
        name = self.action_names[a]
        return Signal(action=to_trade_action(self._targets, a, pos), confidence=float(_softmax(q)[a]),
                      q_values=[float(v) for v in q], features=self._explain(feats, t, env), timestamp=ts,
                      price=price, raw_action=name, observation=self._named(obs))

    # -- rollouts over history (for distillation) ------------------------------------------------------------
    def rollout(self, data: str | None = None, split: str = "train", episodes: int = 20, steps: int = 100,
                seed: int = 0, random_position: bool = True) -> list[Decision]:
        """Run the greedy policy from seeded random starts in `split`; record each state and decision.

        With `random_position`, each episode starts either in USDC or fully in ETH (or short, when allowed),
        so the record covers wallets that hold ETH too, not only the states a flat start leads to."""
        from rl.data import load_candles, split_by_dates

        candles = load_candles(data or self.config.data, self.config.interval)
        sp = split_by_dates(candles, self.config.train_end, self.config.val_end, gap=self.config.features.lookback)
        feats = self.features_for(candles)
        env = self.env_for(feats, *sp.range(split), random_start=True)
        vol_idx = feats.names.index("realised_vol")
        levels = [-1, 0, 1] if self.config.env.allow_short else [0, 1]
        wallets = np.random.default_rng(seed)  # which position each episode starts in
        out: list[Decision] = []
        for ep in range(episodes):
            position = int(wallets.choice(levels)) if random_position else 0
            obs, _ = env.reset(seed=seed + ep, options={"length": steps, "position": position})
            for _ in range(steps):
                t = env.t
                q = q_values(self.model, obs)
                a = int(np.argmax(q))
                c = candles
                out.append(Decision(
                    timestamp=int(c.timestamps[t]), price=float(c.close[t]),
                    volume=None if c.volume is None else float(c.volume[t]),
                    volatility=float(feats.raw[t][vol_idx]),
                    price_change=float(c.close[t] / c.close[max(0, t - PRICE_CHANGE_BARS)] - 1.0),
                    eth=float(env.units), usdc=float(env.cash),
                    action=to_trade_action(self._targets, a, env.position),
                    confidence=float(_softmax(q)[a]), q_values=[float(v) for v in q],
                    features=self._explain(feats, t, env), observation=self._named(obs)))
                obs, _, terminated, truncated, _ = env.step(a)
                if terminated or truncated:
                    break
        return out
