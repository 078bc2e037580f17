"""What `trader rl search` varies: the whole training recipe, sampled from an Optuna trial.

Parameter names are dotted paths into `TrainConfig` (plus a few grouped choices such as `features.ema`), so a
trial's params read like the config they produce and optuna-dashboard shows them by name.
"""

from __future__ import annotations

from rl.config import TrainConfig

EMA_PAIRS = {"12/48": (12, 48), "24/96": (24, 96), "48/168": (48, 168)}
TREND_SETS = {"none": [], "1d,3d,7d": [24, 72, 168]}
NETS = {"32x32": [32, 32], "64x64": [64, 64], "128x128": [128, 128]}
TIMESTEPS = (15_000, 30_000, 60_000)


def max_lookback() -> int:
    """The longest feature look-back the space can sample: the folds' embargo, the same for every trial."""
    from rl.features import FeatureSpec

    return FeatureSpec(window=16, vol_window=96, ema_fast=48, ema_slow=168, trend_windows=[24, 72, 168],
                       vol_long=168).lookback


def suggest_recipe(trial, base: TrainConfig) -> TrainConfig:
    """A `TrainConfig` for `trial`: features, reward, action set, sizing, trading costs, algorithm, network."""
    ema_fast, ema_slow = EMA_PAIRS[trial.suggest_categorical("features.ema", list(EMA_PAIRS))]
    features = base.features.model_copy(update={
        "window": trial.suggest_categorical("features.window", [4, 8, 16]),
        "vol_window": trial.suggest_categorical("features.vol_window", [24, 48, 96]),
        "ema_fast": ema_fast, "ema_slow": ema_slow,
        "trend_windows": TREND_SETS[trial.suggest_categorical("features.trend", list(TREND_SETS))],
        "vol_long": trial.suggest_categorical("features.vol_long", [0, 168]) or None,
    })
    reward = trial.suggest_categorical("env.reward", ["log_return", "drawdown_penalty"])
    env_update = {
        "reward": reward,
        "action_set": trial.suggest_categorical("env.action_set", ["spot3", "target"]),
        "cost_penalty": trial.suggest_float("env.cost_penalty", 0.0, 3.0),
        "min_hold_bars": trial.suggest_categorical("env.min_hold_bars", [0, 6, 24]),
    }
    if reward == "drawdown_penalty":
        env_update["drawdown_penalty"] = trial.suggest_float("env.drawdown_penalty", 0.5, 5.0, log=True)
    sizing = trial.suggest_categorical("env.sizing", ["full", "half", "vol_target"])
    env_update["position_size"] = 0.5 if sizing == "half" else 1.0
    env_update["vol_target"] = 0.5 if sizing == "vol_target" else None  # 50% annualised, ~ETH's calm regime
    algo = trial.suggest_categorical("algo", ["dqn", "qrdqn", "ppo", "a2c"])
    update = {
        "algo": algo,
        "features": features,
        "env": base.env.model_copy(update=env_update),
        "net_arch": NETS[trial.suggest_categorical("net_arch", list(NETS))],
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True),
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.97, 0.99]),
        "timesteps": trial.suggest_categorical("timesteps", list(TIMESTEPS)),
    }
    # validate the combination like any user config (a space that samples nonsense fails loudly here)
    return TrainConfig.model_validate({**base.model_dump(), **{k: v.model_dump() if hasattr(v, "model_dump")
                                                                  else v for k, v in update.items()}})
