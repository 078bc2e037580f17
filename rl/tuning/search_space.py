"""What `trader rl search` varies: the whole training recipe, sampled from an Optuna trial.

Parameter names are dotted paths into `TrainConfig` (plus a few grouped choices such as `features.ema`), so a
trial's params read like the config they produce and optuna-dashboard shows them by name.

Every recipe the space can sample reads at most `MAX_LOOKBACK` bars of one candle feed (OHLC, volume when
present, the bar's own timestamp): the chain bakes that much real history for the shipped policy.
"""

from __future__ import annotations

from rl.training.config import TrainConfig

MAX_LOOKBACK = 168  # one week of hourly bars: the history the chain provides for the policy's features
EMA_PAIRS = {"12/48": (12, 48), "24/84": (24, 84)}
TREND_SETS = {"none": [], "6h,1d,3d": [6, 24, 72]}
NETS = {"32x32": [32, 32], "64x64": [64, 64], "128x128": [128, 128]}
TIMESTEPS = (10_000, 20_000, 40_000)
ALGOS = ("dqn", "qrdqn", "ppo", "a2c")
DQN_FAMILY = ("dqn", "qrdqn")  # what may ship: the product's tool is a trained DQN policy


def max_lookback() -> int:
    """The longest feature look-back the space can sample: the folds' embargo, the same for every trial."""
    from rl.envs.features import FeatureSpec

    return FeatureSpec(window=16, vol_window=96, ema_fast=24, ema_slow=84, trend_windows=[6, 24, 72],
                       vol_long=120, time_features=True).lookback


def suggest_recipe(trial, base: TrainConfig, algos: tuple[str, ...] | list[str] = ALGOS) -> TrainConfig:
    """A `TrainConfig` for `trial`: features, reward, action set, sizing, trading costs, algorithm, network."""
    ema_fast, ema_slow = EMA_PAIRS[trial.suggest_categorical("features.ema", list(EMA_PAIRS))]
    features = base.features.model_copy(update={
        "window": trial.suggest_categorical("features.window", [4, 8, 16]),
        "vol_window": trial.suggest_categorical("features.vol_window", [24, 48, 96]),
        "ema_fast": ema_fast, "ema_slow": ema_slow,
        "trend_windows": TREND_SETS[trial.suggest_categorical("features.trend", list(TREND_SETS))],
        "vol_long": trial.suggest_categorical("features.vol_long", [0, 120]) or None,
        "time_features": trial.suggest_categorical("features.time", [False, True]),
    })
    reward = trial.suggest_categorical("env.reward", ["log_return", "drawdown_penalty", "diff_sharpe"])
    action_set = trial.suggest_categorical("env.action_set", ["target", "size5"])
    env_update = {
        "reward": reward,
        "action_set": action_set,
        "cost_penalty": trial.suggest_float("env.cost_penalty", 0.0, 3.0),
        "min_hold_bars": trial.suggest_categorical("env.min_hold_bars", [0, 6, 24]),
    }
    if reward == "drawdown_penalty":
        env_update["drawdown_penalty"] = trial.suggest_float("env.drawdown_penalty", 0.5, 5.0, log=True)
    # size5 decides its own size; `target` trades a fixed size, full or volatility-scaled
    sizing = "level" if action_set == "size5" else trial.suggest_categorical("env.sizing", ["full", "vol_target"])
    env_update["position_size"] = 1.0
    env_update["vol_target"] = 0.5 if sizing == "vol_target" else None  # 50% annualised, ~ETH's calm regime
    algo = trial.suggest_categorical("algo", list(algos))
    update = {
        "algo": algo,
        "features": features,
        "env": base.env.model_copy(update=env_update),
        "net_arch": NETS[trial.suggest_categorical("net_arch", list(NETS))],
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True),
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.97, 0.99]),
        "timesteps": trial.suggest_categorical("timesteps", list(TIMESTEPS)),
    }
    if algo == "dqn":
        update["double_q"] = trial.suggest_categorical("double_q", [False, True])
    # validate the combination like any user config (a space that samples nonsense fails loudly here)
    return TrainConfig.model_validate({**base.model_dump(), **{k: v.model_dump() if hasattr(v, "model_dump")
                                                                  else v for k, v in update.items()}})
