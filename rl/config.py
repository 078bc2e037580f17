"""The training run's config: one typed object, resolved from CLI > file > env > defaults, saved in RUN_DIR."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from rl.env import EnvConfig
from rl.features import FeatureSpec
from trader_core.market_data import DEFAULT_DATASET

Algo = Literal["dqn", "qrdqn", "ppo", "a2c"]


class TrainConfig(BaseModel):
    """`trader rl train` settings. DQN defaults are the seed tutorial's hyperparameters."""

    data: str = Field(DEFAULT_DATASET, description="bundled dataset name or candle CSV path")
    interval: str | None = Field(None, description="candle interval for swap-event data, e.g. 1h")
    train_end: str | None = Field(None, description="last training timestamp (ISO); default: 70% of the range")
    val_end: str | None = Field(None, description="last validation timestamp (ISO); default: 85% of the range")
    algo: Algo = "dqn"
    timesteps: int = Field(100_000, ge=1)
    seed: int = 0
    n_envs: int = Field(16, ge=1, le=4096, description="envs stepped together (batched numpy env when > 1)")
    learning_rate: float = 1e-4
    buffer_size: int = 10_000
    batch_size: int = 64
    gamma: float = 0.99
    exploration_fraction: float = Field(0.2, description="fraction of training over which epsilon decays")
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    learning_starts: int = 1000
    target_update_interval: int = 500
    updates_per_transition: float = Field(0.25, gt=0, description="gradient steps per env transition "
                                          "(0.25 = SB3's train_freq=4, gradient_steps=1 on one env)")
    reward_scale: float = Field(100.0, gt=0, description="multiply rewards seen by the learner (hourly log "
                                "returns are ~1e-3; the env's own reward and metrics stay unscaled)")
    net_arch: list[int] = Field(default_factory=lambda: [64, 64])
    eval_freq: int = Field(10_000, ge=100, description="timesteps between validation backtests")
    env: EnvConfig = Field(default_factory=EnvConfig)
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    torch_threads: int | None = Field(None, description="default: 1 on machines with <= 4 cores")
    device: str = "cpu"
