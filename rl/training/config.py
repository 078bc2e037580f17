"""The training run's config: one typed object, resolved from CLI > file > env > defaults, saved in RUN_DIR."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from rl.envs.trading_env import EnvConfig
from rl.envs.features import FeatureSpec
from trader_core.config import load_config
from trader_core.errors import ConfigError
from trader_core.market_data import DEFAULT_DATASET

Algo = Literal["dqn", "qrdqn", "ppo", "a2c"]


class TrainConfig(BaseModel):
    """`trader rl train` settings. DQN defaults are the seed tutorial's hyperparameters."""

    data: str = Field(DEFAULT_DATASET, description="bundled dataset name or candle CSV path")
    also_train_on: list[str] = Field(default_factory=list, description="more datasets whose training splits "
                                     "are pooled with `data`'s (same dates, one scaler), e.g. chainlink-btc-1h")
    interval: str | None = Field(None, description="candle interval for swap-event data, e.g. 1h")
    train_end: str | None = Field(None, description="last training timestamp (ISO); default: 70% of the range")
    val_end: str | None = Field(None, description="last validation timestamp (ISO); default: 85% of the range")
    checkpoint: Literal["best_val", "last"] = Field("best_val", description="which model a policy serves: the "
                                                    "best validation Sharpe, or the last (no selection on a "
                                                    "single window)")
    algo: Algo = "dqn"
    timesteps: int = Field(100_000, ge=1, le=10**9)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    n_envs: int = Field(16, ge=1, le=4096, description="envs stepped together (batched numpy env when > 1)")
    learning_rate: float = Field(1e-4, gt=0, le=1, description="optimizer step size")
    buffer_size: int = Field(10_000, ge=1, description="replay buffer transitions (dqn, qrdqn)")
    batch_size: int = Field(64, ge=1, description="transitions per gradient step (dqn, qrdqn)")
    gamma: float = Field(0.99, gt=0, le=1, description="discount factor")
    exploration_fraction: float = Field(0.2, ge=0, le=1, description="fraction of training over which epsilon "
                                        "decays")
    exploration_initial_eps: float = Field(1.0, ge=0, le=1)
    exploration_final_eps: float = Field(0.05, ge=0, le=1)
    learning_starts: int = Field(1000, ge=0)
    target_update_interval: int = Field(500, ge=1)
    updates_per_transition: float = Field(0.25, gt=0, le=64, description="gradient steps per env transition "
                                          "(0.25 = SB3's train_freq=4, gradient_steps=1 on one env)")
    reward_scale: float = Field(100.0, gt=0, description="multiply rewards seen by the learner (hourly log "
                                "returns are ~1e-3; the env's own reward and metrics stay unscaled)")
    double_q: bool = Field(False, description="dqn: Double DQN targets (the online net picks the next action, "
                           "the target net values it; curbs the max operator's overestimation)")
    n_quantiles: int = Field(25, ge=2, le=256, description="qrdqn: quantiles per action (its loss is "
                             "quadratic in this; SB3's 200 trains ~30x slower on small CPUs)")
    net_arch: list[int] = Field(default_factory=lambda: [64, 64], description="hidden layer sizes")
    eval_freq: int = Field(10_000, ge=100, description="timesteps between validation backtests")
    env: EnvConfig = Field(default_factory=EnvConfig)
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    torch_threads: int | None = Field(None, ge=1, le=1024, description="default: 1 on machines with <= 4 cores")
    device: str = "cpu"

    @field_validator("net_arch")
    @classmethod
    def _layers(cls, v: list[int]) -> list[int]:
        if not v or any(n < 1 or n > 65_536 for n in v):
            raise ValueError("net_arch needs at least one hidden layer of 1..65536 units, e.g. [64, 64]")
        return v

    @property
    def datasets(self) -> list[str]:
        return [self.data, *self.also_train_on]


def load_train_config(run_dir: str | Path) -> TrainConfig:
    """The resolved config a run saved; a directory that is not a run gets a one-line error."""
    if not Path(run_dir).is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist; train one with `trader rl train --out DIR`")
    return load_config(TrainConfig, run_dir)
