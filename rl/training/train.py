"""`trader rl train`: SB3 training on the trading env, keeping the checkpoint with the best validation
Sharpe net of costs. Reads top to bottom: data -> splits -> features -> envs -> model -> learn -> save.

RUN_DIR holds: model.zip (last), best_model.zip (best validation Sharpe), config.json (resolved TrainConfig),
features.json (spec, names, scaler fitted on the training split), metrics.json, tb/ (TensorBoard logs).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from rl.training.algos import algo_class, model_action_fn
from rl.training.config import TrainConfig, load_train_config  # noqa: F401  (re-exported)
from trader_core.config import save_config


def features_with_shared_scaler(candles_list, spec, fit_ranges):
    """Features of several series standardised by one scaler fitted on all their training ranges."""
    from rl.envs.features import build_features, compute_raw, fit_scaler_pooled

    raws = [compute_raw(c, spec)[0] for c in candles_list]
    scaler = fit_scaler_pooled([(raw, a, b) for raw, (a, b) in zip(raws, fit_ranges)])
    return [build_features(c, spec, scaler=scaler) for c in candles_list]


def pooled_training_set(feats_list, ranges):
    """(features, (start, stop)) the learner samples episodes from: one series, or the pooled ranges."""
    from rl.envs.features import pool_features

    if len(feats_list) == 1:
        return feats_list[0], ranges[0]
    pooled = pool_features([(f, a, b) for f, (a, b) in zip(feats_list, ranges)])
    return pooled, (0, len(pooled.candles))


def prepare_market(cfg: TrainConfig):
    """Candles of `cfg.data`, its leak-free split, its features (scaler fitted on the training splits of every
    dataset trained on) and the (possibly pooled) training set."""
    from rl.envs.data import load_candles, split_by_dates

    candles_list = [load_candles(d, cfg.interval) for d in cfg.datasets]
    splits = [split_by_dates(c, cfg.train_end, cfg.val_end, gap=cfg.features.lookback) for c in candles_list]
    feats_list = features_with_shared_scaler(candles_list, cfg.features, [sp.train for sp in splits])
    train_set = pooled_training_set(feats_list, [sp.train for sp in splits])
    return candles_list[0], splits[0], feats_list[0], train_set


def make_train_env(cfg: TrainConfig, feats, train_range: tuple[int, int]):
    """SB3 VecEnv over [start, stop): the batched numpy env when it supports the reward, else N singles."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rl.envs.trading_env import TradingEnv
    from rl.envs.vec_env import VECTOR_ACTION_SETS, VECTOR_REWARDS, BatchedTradingEnv, make_sb3_vec_env

    start, stop = train_range
    if cfg.n_envs > 1 and cfg.env.reward in VECTOR_REWARDS and cfg.env.action_set in VECTOR_ACTION_SETS:
        venv = make_sb3_vec_env(BatchedTradingEnv(feats, cfg.env, cfg.n_envs, start, stop, seed=cfg.seed))
    else:
        venv = DummyVecEnv([lambda: TradingEnv(feats, cfg.env, start, stop) for _ in range(cfg.n_envs)])
        venv.seed(cfg.seed)
    return venv if cfg.reward_scale == 1.0 else _scaled_rewards(venv, cfg.reward_scale)


def _scaled_rewards(venv, scale: float):
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class ScaleReward(VecEnvWrapper):
        def reset(self):
            return self.venv.reset()

        def step_wait(self):
            obs, rewards, dones, infos = self.venv.step_wait()
            return obs, rewards * scale, dones, infos

    return ScaleReward(venv)


def algo_kwargs(cfg: TrainConfig) -> dict:
    """Hyperparameters per algorithm; off-policy ones keep `updates_per_transition` whatever n_envs is."""
    policy_kwargs: dict = {"net_arch": list(cfg.net_arch)}
    if cfg.algo in ("dqn", "qrdqn"):
        policy_kwargs["optimizer_kwargs"] = {"fused": True}  # same Adam maths, one kernel for all params
    if cfg.algo == "qrdqn":
        policy_kwargs["n_quantiles"] = cfg.n_quantiles
    common = {"learning_rate": cfg.learning_rate, "gamma": cfg.gamma, "seed": cfg.seed, "device": cfg.device,
              "policy_kwargs": policy_kwargs, "verbose": 0}
    if cfg.algo in ("dqn", "qrdqn"):
        train_freq = max(1, round(4 / cfg.n_envs))  # env steps per update call, counted per vec step
        gradient_steps = max(1, round(cfg.updates_per_transition * train_freq * cfg.n_envs))
        return {**common, "buffer_size": cfg.buffer_size, "batch_size": cfg.batch_size,
                "exploration_fraction": cfg.exploration_fraction,
                "exploration_initial_eps": cfg.exploration_initial_eps,
                "exploration_final_eps": cfg.exploration_final_eps, "learning_starts": cfg.learning_starts,
                "target_update_interval": cfg.target_update_interval, "train_freq": train_freq,
                "gradient_steps": gradient_steps}
    if cfg.algo == "ppo":
        # a rollout of ~2048 transitions whatever n_envs is; minibatches divide it exactly
        n_steps = max(16, 2048 // cfg.n_envs)
        return {**common, "n_steps": n_steps, "batch_size": min(256, n_steps * cfg.n_envs)}
    return common


def fit_model(cfg: TrainConfig, feats, train_range: tuple[int, int], callback=None, log_dir=None,
              progress: bool = False):
    """A fresh model of `cfg.algo` trained for `cfg.timesteps` on bars [start, stop) of `feats`."""
    venv = make_train_env(cfg, feats, train_range)
    model = algo_class(cfg.algo)("MlpPolicy", venv, tensorboard_log=log_dir, **algo_kwargs(cfg))
    if cfg.algo == "dqn":
        model.double_q = cfg.double_q
    model.learn(total_timesteps=cfg.timesteps, callback=callback, progress_bar=progress, tb_log_name="run")
    return model


def _eval_callback(cfg: TrainConfig, feats, split, run_dir: Path, history: list):
    from stable_baselines3.common.callbacks import BaseCallback

    from rl.training.evaluate import run_backtest
    from rl.metrics import compute_metrics

    class BestValidationSharpe(BaseCallback):
        """Every `eval_freq` timesteps: deterministic backtest on validation; keep the best Sharpe net of costs."""

        def __init__(self) -> None:
            super().__init__()
            self.best = -np.inf
            self.next_eval = cfg.eval_freq

        def _on_training_start(self) -> None:
            self.next_eval = self.model.num_timesteps + cfg.eval_freq  # resumed runs continue the cadence

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.next_eval += cfg.eval_freq
                self.evaluate()
            return True

        def evaluate(self) -> None:
            result = run_backtest(feats, cfg.env, *split.val, model_action_fn(self.model))
            m = compute_metrics(result, feats.candles.interval_s)
            history.append({"timesteps": int(self.num_timesteps), "val_sharpe": m["sharpe"],
                            "val_total_return": m["total_return"], "val_n_trades": m["n_trades"]})
            self.logger.record("eval/val_sharpe", m["sharpe"])
            self.logger.record("eval/val_total_return", m["total_return"])
            if m["sharpe"] > self.best:
                self.best = m["sharpe"]
                self.model.save(run_dir / "best_model.zip")

        def _on_training_end(self) -> None:
            if not history or history[-1]["timesteps"] != self.num_timesteps:
                self.evaluate()

    return BestValidationSharpe()


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train (or continue training) a policy into `run_dir`; returns the metrics written to metrics.json."""
    from trader_core.runtime import configure_torch

    configure_torch(cfg.torch_threads)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    candles, split, feats, (train_feats, train_range) = prepare_market(cfg)
    venv = make_train_env(cfg, train_feats, train_range)
    cls = algo_class(cfg.algo)
    if resume:
        model = cls.load(run_dir / "model.zip", env=venv, device=cfg.device)
        if cfg.algo in ("dqn", "qrdqn") and (run_dir / "replay_buffer.pkl").exists():
            model.load_replay_buffer(run_dir / "replay_buffer.pkl")
    else:
        model = cls("MlpPolicy", venv, tensorboard_log=str(run_dir / "tb"), **algo_kwargs(cfg))
        if cfg.algo == "dqn":
            model.double_q = cfg.double_q
    save_config(cfg, run_dir)
    save_features(feats, run_dir)

    previous = json.loads((run_dir / "metrics.json").read_text()) if resume and (run_dir / "metrics.json").exists() \
        else {}
    history: list = list(previous.get("validation", []))
    callback = _eval_callback(cfg, feats, split, run_dir, history)
    if resume:
        callback.best = max((h["val_sharpe"] for h in history), default=-np.inf)
    started = time.perf_counter()
    model.learn(total_timesteps=cfg.timesteps, callback=callback, progress_bar=progress,
                reset_num_timesteps=not resume, tb_log_name="run")
    elapsed = time.perf_counter() - started
    model.save(run_dir / "model.zip")
    if cfg.algo in ("dqn", "qrdqn"):
        model.save_replay_buffer(run_dir / "replay_buffer.pkl")
    best = max(history, key=lambda h: h["val_sharpe"]) if history else None
    metrics = {
        "algo": cfg.algo, "seed": cfg.seed, "timesteps": int(model.num_timesteps),
        "timesteps_this_run": cfg.timesteps, "train_seconds": round(elapsed, 2),
        "timesteps_per_s": round(cfg.timesteps / elapsed, 1), "split": split.to_dict(candles),
        "best_validation": best, "validation": history,
        "runs": previous.get("runs", 0) + 1, "datasets": cfg.datasets, "checkpoint": cfg.checkpoint,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def save_features(feats, run_dir: Path) -> None:
    payload = {"spec": feats.spec.model_dump(), "names": feats.names, "scaler": feats.scaler.model_dump(),
               "has_volume": feats.candles.volume is not None, "interval_s": int(feats.candles.interval_s),
               "last_timestamp": int(feats.candles.timestamps[-1])}
    (Path(run_dir) / "features.json").write_text(json.dumps(payload, indent=2) + "\n")

