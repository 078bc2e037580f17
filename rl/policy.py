"""A trained policy as the rest of the toolkit sees it: `Policy.load(run_dir).signal(...)`.

A run directory holds one model, or several `seed_*` runs of one recipe: then the policy is their ensemble
(majority vote, ties broken by the mean Q). Signals are built through the same `TradingEnv` observation code
as training and backtests, from the columns the policy's saved feature spec names (extra columns such as
`volume` are ignored). Safety switch (seed 001): on a stale latest bar, a look-back the data does not cover,
bars of another interval than the policy was trained on, NaN features, an unexpected state or any model
error, the policy answers HOLD with the reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from rl.training.algos import algo_class, model_action_fn, q_values  # noqa: F401  (re-exported)
from rl.training.config import TrainConfig, load_train_config
from rl.training.ensemble import Rule, decide, ensemble_action_fn, member_q_values
from trader_core.errors import ConfigError, DataError, ModelError

DEFAULT_RUN = Path(__file__).parent / "default_policy"
PRICE_CHANGE_BARS = 24
STALE_BARS = 3.0  # a latest bar older than this many intervals is stale


class Signal(BaseModel):
    """The policy's decision for the latest bar (the JSON contract of `trader rl signal --json`)."""

    action: Literal["BUY", "SELL", "HOLD"]
    agreement: float = Field(description="share of ensemble members whose own choice is this action (1.0 for "
                             "one model); 0 when the safety switch answered")
    q_margin: float = Field(description="chosen action's mean Q-value (logit for PPO/A2C) minus the best "
                            "other action's, in the network's units; not a probability")
    q_values: list[float]
    members: int = 1
    features: dict[str, float]
    reason: str | None = None  # set when the safety switch forced HOLD
    timestamp: int  # the latest bar's open time, unix seconds
    time: str  # the same, ISO-8601 UTC
    age_s: float | None = None  # seconds from the latest bar's close to `now`
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
    agreement: float
    q_margin: float
    q_values: list[float]
    features: dict[str, float]
    observation: dict[str, float] = {}  # the exact vector the network saw, by `Policy.observation_names`


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_members(run: str | Path | None, seeds: list[int] | None = None) -> tuple[Path, list[Path]]:
    """'default' or None -> the bundled policy. A run directory -> (it, [it]); a parent of `seed_*` runs ->
    (it, every seed run, or only `seeds`)."""
    if run is None or str(run) == "default":
        run = DEFAULT_RUN
    path = Path(run).expanduser()
    if (path / "config.json").exists():
        if seeds:
            raise ConfigError(f"{path} is a single run; --seeds selects members of a multi-seed run directory")
        return path, [path]
    children = sorted((p for p in path.glob("seed_*") if (p / "config.json").exists()),
                      key=lambda p: int(p.name.split("_", 1)[1]) if p.name.split("_", 1)[1].isdigit() else -1) \
        if path.is_dir() else []
    if not children:
        raise ModelError(f"{path} is not a training run (no config.json); train one with "
                         "`trader rl train --out DIR` or use --run default")
    if seeds is not None:
        have = {p.name.split("_", 1)[1]: p for p in children}
        missing = [s for s in seeds if str(s) not in have]
        if missing:
            raise ConfigError(f"{path} has no seed {', '.join(map(str, missing))}; it has seeds {', '.join(have)}")
        children = [have[str(s)] for s in seeds]
    return path, children


def resolve_run(run: str | Path | None) -> Path:
    """The directory whose config.json describes the policy (the first member of an ensemble)."""
    return resolve_members(run)[1][0]


# What decides a member's actions: its recipe, its feature scaler, its weights (not its metrics or reports).
DECISION_FILES = ("config.json", "features.json", "model.zip", "best_model.zip")


def policy_digest(run: str | Path | None = "default") -> str:
    """sha256 over every member's decision files, by name relative to the run and content: the identity of the
    policy a model was distilled from. Renaming or moving the run, or editing its card, keeps it."""
    root, members = resolve_members(run)
    h = hashlib.sha256()
    for member in members:
        rel = member.relative_to(root).as_posix() if member != root else "."
        for name in DECISION_FILES:
            f = member / name
            if f.is_file():
                h.update(f"{rel}/{name}\n".encode())
                h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def to_trade_action(targets: list[list[int]], action: int, position: int) -> Literal["BUY", "SELL", "HOLD"]:
    """What an action means for an ETH holder in `position`: BUY (more ETH), SELL (less ETH) or HOLD.

    Uses the env's own transition table, so a no-op (SELL while holding no ETH, BUY while long) is HOLD,
    exactly as the env executes it.
    """
    from rl.envs.trading_env import KEEP

    target = targets[action][position + 1]
    if target == KEEP or target == position:
        return "HOLD"
    return "BUY" if target > position else "SELL"


class Policy:
    """A loaded run: its model(s) + the config and feature scaler they were trained with."""

    def __init__(self, models: list, config: TrainConfig, run_dir: Path, member_dirs: list[Path] | None = None,
                 rule: Rule = "vote") -> None:
        self.models, self.config, self.run_dir, self.rule = list(models), config, run_dir, rule
        self.member_dirs = member_dirs or [run_dir]
        meta = json.loads((self.member_dirs[0] / "features.json").read_text())
        from rl.envs.trading_env import target_table
        from rl.envs.features import Scaler

        self.scaler = Scaler(**meta["scaler"])
        self.feature_names: list[str] = meta["names"]
        self.interval_s: int | None = meta.get("interval_s")
        from rl.envs.trading_env import SIZE_LEVELS

        self.action_names = config.env.action_names
        self._targets = target_table(config.env)
        self._levels = SIZE_LEVELS.get(config.env.action_set)  # size5: the action is an exposure level

    @property
    def model(self):
        """The first member (the only one for a single run)."""
        return self.models[0]

    @property
    def uses_volume(self) -> bool:
        return "volume_z" in self.feature_names

    @property
    def observation_names(self) -> list[str]:
        """Names of the observation vector's entries, in order: market features (scaled), account state,
        then the previous action one-hot as `prev_<ACTION>`."""
        from rl.envs.trading_env import ACCOUNT_FEATURES

        return [*self.feature_names, *ACCOUNT_FEATURES, *(f"prev_{a}" for a in self.action_names)]

    def _named(self, obs: np.ndarray) -> dict[str, float]:
        return {name: float(v) for name, v in zip(self.observation_names, np.asarray(obs).ravel(), strict=True)}

    @classmethod
    def load(cls, run: str | Path | None = "default", which: Literal["best", "last"] | None = None,
             seeds: list[int] | None = None, rule: Rule = "vote") -> "Policy":
        """Load a run (or an ensemble of its `seed_*` runs). `which`: best validation checkpoint or last model;
        default: what the run's config says (`checkpoint`)."""
        from trader_core.runtime import configure_torch

        run_dir, members = resolve_members(run, seeds)
        configs = [load_train_config(m) for m in members]
        cfg = configs[0]
        strip = {"seed", "torch_threads"}
        if any(c.model_dump(exclude=strip) != cfg.model_dump(exclude=strip) for c in configs[1:]):
            raise ModelError(f"the seed runs in {run_dir} were trained with different recipes; an ensemble "
                             "needs one recipe (pass --run to a single seed run)")
        scalers = {(m / "features.json").read_text() for m in members}
        if len(scalers) > 1:
            raise ModelError(f"the seed runs in {run_dir} have different feature scalers (different data?)")
        configure_torch()
        models = [cls._load_model(m, cfg, which) for m in members]
        return cls(models, cfg, run_dir if len(members) > 1 else members[0], members, rule)

    @staticmethod
    def _load_model(run_dir: Path, cfg: TrainConfig, which: str | None):
        which = which or ("best" if cfg.checkpoint == "best_val" else "last")
        path = run_dir / ("best_model.zip" if which == "best" else "model.zip")
        if not path.exists():
            path = run_dir / "model.zip"
        if not path.exists():
            raise ModelError(f"{run_dir} has no model.zip; the training run did not finish")
        try:
            if cfg.algo == "dqn":  # the Q-network alone: SB3's loader also builds an optimizer (seconds of imports)
                from rl.training.served_q import served_q_net

                served = served_q_net(path)
                if served is not None:
                    return served
            return algo_class(cfg.algo).load(path, device="cpu")
        except Exception as exc:  # corrupted zip, incompatible SB3 version, ...
            raise ModelError(f"cannot load {path}: {exc}") from exc

    def describe(self) -> str:
        """One line naming the algorithm, the recipe, its training budget and (from the run's card.json) what
        the policy was measured to be worth against its baselines."""
        c = self.config
        algo = {"dqn": "Double DQN" if c.double_q else "DQN", "qrdqn": "QR-DQN"}.get(c.algo, c.algo.upper())
        members = f"vote of {len(self.models)} seeds" if len(self.models) > 1 else "1 model"
        actions = "exposure 0/25/50/75/100%" if self._levels else f"{c.env.action_set} actions"
        text = (f"{algo}, {members}, {c.timesteps:,} timesteps each on {' + '.join(c.datasets)}; {actions}, "
                f"reward {c.env.reward}, look-back {c.features.lookback} bars")
        card = self.run_dir / "card.json"
        if card.exists():
            worth = json.loads(card.read_text()).get("worth")
            text += f". {worth}" if worth else ""
        return text

    def action_fn(self):
        """The policy's decision rule in the `rl.training.evaluate.ActionFn` shape (the ensemble's vote)."""
        return ensemble_action_fn(self.models, self.rule)

    # -- features and environment built exactly as in training ---------------------------------------------
    def select_columns(self, candles):
        """The columns this policy reads: volume is dropped unless the policy was trained on it."""
        if candles.volume is not None and not self.uses_volume:
            return candles.without_volume()
        if candles.volume is None and self.uses_volume:
            raise DataError(f"this policy reads a volume column ({candles.name} has none): pass data with "
                            "timestamp, open, high, low, close, volume")
        return candles

    def check_interval(self, candles) -> None:
        if self.interval_s and candles.interval_s and candles.interval_s != self.interval_s:
            raise DataError(f"{candles.name}: bars are {candles.interval_s}s apart but this policy was trained on "
                            f"{self.interval_s}s bars; pass data at the policy's interval")

    def features_for(self, candles=None):
        from rl.envs.data import load_candles
        from rl.envs.features import build_features
        from trader_core.market_data import validate_candles

        if candles is None:
            candles = load_candles(self.config.data, self.config.interval)
        else:
            validate_candles(candles, candles.name)
        return build_features(self.select_columns(candles), self.config.features, scaler=self.scaler)

    def env_for(self, feats, start: int = 0, stop: int | None = None, random_start: bool = False):
        from rl.envs.trading_env import TradingEnv

        return TradingEnv(feats, self.config.env, start, stop, random_start=random_start)

    def decide(self, obs: np.ndarray):
        return decide(member_q_values(self.models, obs), self.rule)

    def act(self, obs: np.ndarray) -> int:
        return self.decide(obs).action

    def trade_action(self, action: int, position: int) -> Literal["BUY", "SELL", "HOLD"]:
        """BUY/SELL/HOLD for an account in `position` (size5: its exposure level index)."""
        if self._levels is not None:
            return "HOLD" if action == position else ("BUY" if action > position else "SELL")
        return to_trade_action(self._targets, action, position)

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
    def signal(self, candles=None, position: float = 0.0, now: float | None = None,
               stale_bars: float = STALE_BARS) -> Signal:
        """Decision for the last bar of `candles` (default: the run's dataset) holding `position` (0..1 in ETH;
        -1..1 for a policy that may short), as of `now` (unix seconds; default: the wall clock)."""
        from rl.envs.data import load_candles

        raw = candles if candles is not None else load_candles(self.config.data, self.config.interval)
        t = len(raw) - 1
        ts, price = int(raw.timestamps[t]), float(raw.close[t])
        interval = raw.interval_s or self.interval_s or 0
        now = time.time() if now is None else float(now)
        age = now - (ts + interval)
        n = len(self.action_names)

        def hold(reason: str, features: dict | None = None, observation: dict | None = None) -> Signal:
            return Signal(action="HOLD", agreement=0.0, q_margin=0.0, members=len(self.models), q_values=[0.0] * n,
                          features=features or {}, reason=reason, timestamp=ts, time=iso(ts), age_s=age,
                          price=price, raw_action="HOLD", observation=observation or {})

        low = -1.0 if self.config.env.allow_short else 0.0
        if not (isinstance(position, (int, float)) and math.isfinite(position) and low <= position <= 1.0):
            kind = "a short" if isinstance(position, (int, float)) and position < 0 else "out of range"
            return hold(f"unexpected position {position!r} ({kind}): this policy takes a fraction of the "
                        f"portfolio in ETH from {low:g} to 1")
        try:
            self.check_interval(raw)
            feats = self.features_for(raw)
        except (DataError, ModelError) as exc:
            return hold(str(exc))
        if len(raw) <= self.config.features.lookback or not feats.valid[t]:
            return hold(f"the look-back is not covered: features need {self.config.features.lookback} bars of "
                        f"continuous history before the latest bar, the data gives {len(raw)} bars")
        if self._levels is not None:  # the exposure level nearest the wallet's share in ETH
            pos = int(np.argmin([abs(level - position) for level in self._levels]))
        else:
            pos = 1 if position >= 0.5 else (-1 if position <= -0.5 else 0)
        try:
            env = self.env_for(feats)
            obs = env.observe(t, pos)
            explained = self._explain(feats, t, env)
            if age > stale_bars * max(interval, 1):  # the state is shown, but no decision is taken on it
                return hold(f"latest bar {iso(ts)} is stale: {_age_text(age)} old, more than {stale_bars:g} bars "
                            f"of {interval}s; pass fresh candles (or `now` to evaluate history)", explained,
                            self._named(obs))
            d = self.decide(obs)
            if not np.isfinite(d.q_mean).all():
                return hold("model produced non-finite Q-values")
        except Exception as exc:  # the safety switch: any model error means HOLD, never a crash
            return hold(f"model error: {exc}")
        return Signal(action=self.trade_action(d.action, pos), agreement=d.agreement,
                      q_margin=d.q_margin, q_values=[float(v) for v in d.q_mean], members=len(self.models),
                      features=explained, timestamp=ts, time=iso(ts), age_s=age, price=price,
                      raw_action=self.action_names[d.action], observation=self._named(obs))

    # -- rollouts over history (for distillation) ------------------------------------------------------------
    def rollout(self, data: str | None = None, split: str = "train", episodes: int = 20, steps: int = 100,
                seed: int = 0, random_position: bool = True) -> list[Decision]:
        """Run the greedy policy from seeded random starts in `split`; record each state and decision.

        With `random_position`, each episode starts either in USDC or fully in ETH (or short, when allowed),
        so the record covers wallets that hold ETH too, not only the states a flat start leads to."""
        from rl.envs.data import load_candles, split_by_dates

        candles = self.select_columns(load_candles(data or self.config.data, self.config.interval))
        self.check_interval(candles)
        sp = split_by_dates(candles, self.config.train_end, self.config.val_end, gap=self.config.features.lookback)
        feats = self.features_for(candles)
        env = self.env_for(feats, *sp.range(split), random_start=True)
        vol_idx = feats.names.index("realised_vol")
        from rl.training.baselines import position_levels

        levels = position_levels(self.config.env)
        wallets = np.random.default_rng(seed)  # which position each episode starts in
        out: list[Decision] = []
        for ep in range(episodes):
            position = int(wallets.choice(levels)) if random_position else 0
            obs, _ = env.reset(seed=seed + ep, options={"length": steps, "position": position})
            for _ in range(steps):
                t = env.t
                d = self.decide(obs)
                c = candles
                out.append(Decision(
                    timestamp=int(c.timestamps[t]), price=float(c.close[t]),
                    volume=None if c.volume is None else float(c.volume[t]),
                    volatility=float(feats.raw[t][vol_idx]),
                    price_change=float(c.close[t] / c.close[max(0, t - PRICE_CHANGE_BARS)] - 1.0),
                    eth=float(env.units), usdc=float(env.cash),
                    action=self.trade_action(d.action, env.level if self._levels else env.position),
                    agreement=d.agreement, q_margin=d.q_margin, q_values=[float(v) for v in d.q_mean],
                    features=self._explain(feats, t, env), observation=self._named(obs)))
                obs, _, terminated, truncated, _ = env.step(d.action)
                if terminated or truncated:
                    break
        return out


def _age_text(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
