"""`trader rl search`: an Optuna study over the whole training recipe, judged on walk-forward folds.

One study lives in a storage any number of workers share: K local worker processes (`--workers K`) and, with a
database URL, workers on other machines running the same command (Optuna's distributed pattern). Each trial
trains one model per fold on the pooled assets and reports the median net-of-cost Sharpe over every
(fold, asset) test window; hopeless trials are pruned after a fold. When the trials are done, the chosen
recipe is re-run with more seeds, tested once on the final period the search never saw, and its deflated
Sharpe ratio says how much of its edge the number of trials explains.

RUN_DIR holds: study.db (default storage), search_config.json, trials/trial_NNNN.json (each trial's config and
fold metrics), best.json (the chosen TrainConfig: `trader rl train --config best.json`), report.json.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from rl.training.config import TrainConfig
from rl.tuning.fold_eval import (INACTIVE_PENALTY, MarketCache, acts_on_market, evaluate_folds, evaluate_holdout,
                          median_sharpe, plan_folds, recipe_score)
from rl.paths import prepare_out_dir
from rl.tuning.search_space import ALGOS, DQN_FAMILY, max_lookback, suggest_recipe
from rl.tuning.study_storage import STORAGE_ENV, open_study, redact, run_trials, trial_counts
from trader_core.errors import ConfigError


class SearchConfig(BaseModel):
    """`trader rl search` settings; saved as search_config.json in the run directory."""

    out: str = Field(..., description="run directory (study.db, trials/, best.json, report.json)")
    study: str = Field("rl-recipe", min_length=1, max_length=200, description="Optuna study name")
    storage: str | None = Field(None, description="Optuna storage URL (sqlite:///..., postgresql://..., "
                                "journal:PATH); default: SQLite in the run directory")
    trials: int = Field(20, ge=1, le=100_000, description="trials in the study, over all workers")
    workers: int = Field(1, ge=1, le=64, description="local worker processes")
    datasets: list[str] = Field(default_factory=lambda: ["chainlink-eth-1h", "chainlink-btc-1h"],
                                min_length=1, description="trained on together, tested on each")
    interval: str | None = None
    folds: int = Field(3, ge=1, le=20, description="walk-forward folds")
    train_bars: int = Field(3000, ge=100, description="bars per rolling training window (per dataset)")
    timesteps: int | None = Field(None, ge=100, description="fixed training length for every trial (smoke "
                                  "runs, tests); default: searched")
    final_seeds: int = Field(3, ge=1, le=16, description="seeds the chosen recipe is re-run with")
    algos: list[str] = Field(default_factory=lambda: list(ALGOS), min_length=1,
                             description="algorithms the trials may use; the chosen (shipped) recipe is the best "
                             "of the DQN family (dqn, qrdqn); the best other one is reported beside it")
    finalize: bool = Field(True, description="after the trials: choose, re-run with seeds, test on the holdout")
    seed: int = Field(0, ge=0, description="sampler seed (worker k uses seed + k)")
    torch_threads: int = Field(1, ge=1, le=64, description="torch threads per worker")
    worker: bool = Field(False, description="only add trials to a shared study (no finalize); each worker's "
                         "sampler seed also mixes in its host and process, so machines never draw alike")
    heartbeat: int = Field(60, ge=1, le=3600, description="seconds between a running trial's heartbeats; a "
                           "trial silent for 5 of them (its worker died) is failed and re-queued once")

    @property
    def run_dir(self) -> Path:
        return Path(self.out)


# -- storage --------------------------------------------------------------------------------------------------
def storage_url(cfg: SearchConfig) -> str:
    return cfg.storage or os.environ.get(STORAGE_ENV) or f"sqlite:///{(cfg.run_dir / 'study.db').resolve()}"


def shown_storage(cfg: SearchConfig) -> str:
    """The storage as reports record it: credentials redacted, and the embedded SQLite file named as the user named
    the run folder (a shipped report must not carry the absolute path of the machine that ran the search)."""
    if cfg.storage or os.environ.get(STORAGE_ENV):
        return redact(storage_url(cfg))
    return f"sqlite:///{cfg.run_dir / 'study.db'}"


def load_or_create_study(cfg: SearchConfig, worker: int = 0):
    import optuna

    import logging
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(logging.WARNING)  # progress and reports are ours; keep Optuna's INFO lines out
    seed = cfg.seed + worker
    if cfg.worker:  # two machines with the same --seed would otherwise start with the same random trials
        import socket

        seed = zlib.crc32(f"{cfg.seed}:{worker}:{socket.gethostname()}:{os.getpid()}".encode())
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                         constant_liar=True, n_startup_trials=min(8, max(2, cfg.trials // 3)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    return open_study(storage_url(cfg), cfg.study, sampler, pruner, cfg.heartbeat)


# -- one trial --------------------------------------------------------------------------------------------------
def base_config(cfg: SearchConfig) -> TrainConfig:
    base = TrainConfig(data=cfg.datasets[0], also_train_on=cfg.datasets[1:], interval=cfg.interval,
                       checkpoint="last", torch_threads=cfg.torch_threads)
    if cfg.timesteps is not None:
        base = base.model_copy(update={"timesteps": cfg.timesteps,
                                       "learning_starts": min(base.learning_starts, cfg.timesteps // 4)})
    return base


def recipe_for(trial, cfg: SearchConfig) -> TrainConfig:
    recipe = suggest_recipe(trial, base_config(cfg), cfg.algos)
    if cfg.timesteps is not None:
        recipe = recipe.model_copy(update={"timesteps": cfg.timesteps})
    return recipe


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    tmp.replace(path)


def make_objective(cfg: SearchConfig, cache: MarketCache):
    import optuna

    from rl.tuning.overfit import return_moments

    def objective(trial) -> float:
        recipe = recipe_for(trial, cfg)
        started = time.perf_counter()
        record = {"number": trial.number, "params": trial.params, "config": recipe.model_dump(mode="json")}
        trial.set_user_attr("config", recipe.model_dump_json())  # read back by finalize, on any machine

        def on_fold(k: int, rows: list[dict]) -> None:
            trial.report(recipe_score(rows), step=k)
            if k < len(cache.plan.folds) - 1 and trial.should_prune():
                _write_json(cfg.run_dir / "trials" / f"trial_{trial.number:04d}.json",
                            {**record, "state": "PRUNED", "folds": rows,
                             "seconds": round(time.perf_counter() - started, 1)})
                raise optuna.TrialPruned(f"score {recipe_score(rows):.2f} after fold {k}")

        rows, returns = evaluate_folds(recipe, cache, on_fold)
        value = recipe_score(rows)
        sr, skew, kurt, n = return_moments(returns)
        stats = {"oos_sharpe_per_bar": sr, "oos_skew": skew, "oos_kurtosis": kurt, "oos_bars": n,
                 "algo": recipe.algo, "median_sharpe": median_sharpe(rows), "acts_on_market": acts_on_market(rows),
                 "position_predictability": float(np.mean([r["policy"]["position_predictability"] for r in rows])),
                 "min_sharpe": float(min(r["policy"]["sharpe"] for r in rows)),
                 "mean_trades": float(np.mean([r["policy"]["n_trades"] for r in rows])),
                 "mean_time_in_market": float(np.mean([r["policy"]["time_in_market"] for r in rows]))}
        for k, v in stats.items():
            trial.set_user_attr(k, v)
        _write_json(cfg.run_dir / "trials" / f"trial_{trial.number:04d}.json",
                    {**record, "state": "COMPLETE", "value": value, **stats, "folds": rows,
                     "seconds": round(time.perf_counter() - started, 1)})
        return value

    return objective


def run_worker(cfg: SearchConfig, worker: int = 0) -> None:
    """Run trials until the study holds `cfg.trials` finished ones (over every worker and machine)."""
    from trader_core.runtime import configure_torch

    configure_torch(cfg.torch_threads)
    study = load_or_create_study(cfg, worker)
    cache = MarketCache(plan_folds(cfg.datasets, cfg.folds, cfg.train_bars, max_lookback(), cfg.interval))
    run_trials(study, make_objective(cfg, cache), cfg.trials, storage_url(cfg))


def _worker_main(cfg_json: str, worker: int) -> None:
    run_worker(SearchConfig.model_validate_json(cfg_json), worker)


def start_workers(cfg: SearchConfig) -> list:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fresh interpreters: no forked torch/SQLite state
    procs = [ctx.Process(target=_worker_main, args=(cfg.model_dump_json(), k), daemon=False)
             for k in range(cfg.workers)]
    for p in procs:
        p.start()
    return procs


# -- the driver -------------------------------------------------------------------------------------------------
state_counts = trial_counts


def trials_span(study) -> float | None:
    """Seconds from the first trial's start to the last one's end, over every worker and run of the study."""
    done = [t for t in study.get_trials(deepcopy=False) if t.datetime_start and t.datetime_complete]
    if not done:
        return None
    return round((max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds(), 1)


def search(cfg: SearchConfig, on_progress=None) -> dict:
    """Run the study to `cfg.trials` trials with `cfg.workers` local processes, then (optionally) finalize."""
    prepare_out_dir(cfg.out).mkdir(exist_ok=True)
    _write_json(cfg.run_dir / "search_config.json",
                {**cfg.model_dump(mode="json"), "storage": shown_storage(cfg)})
    study = load_or_create_study(cfg)  # created once here, so the workers only load it
    started = time.perf_counter()
    procs = start_workers(cfg)
    try:
        while any(p.is_alive() for p in procs):
            if on_progress is not None:
                on_progress(study, state_counts(study))
            time.sleep(2.0)
    finally:
        for p in procs:
            p.join()
    wall = time.perf_counter() - started
    counts = state_counts(study)
    if on_progress is not None:
        on_progress(study, counts)
    failed_workers = [k for k, p in enumerate(procs) if p.exitcode != 0]
    summary = {"study": cfg.study, "storage": shown_storage(cfg), "trials": counts,
               "wall_seconds": round(wall, 1), "trials_span_seconds": trials_span(study), "workers": cfg.workers,
               "failed_workers": failed_workers}
    if failed_workers and not counts.get("COMPLETE"):
        raise ConfigError(f"search workers {failed_workers} exited with errors and no trial completed; "
                          f"run with --workers 1 and DEBUG=1 to see why")
    if not cfg.finalize or cfg.worker:
        return summary
    report = {**summary, **finalize(cfg, study)}
    _write_json(cfg.run_dir / "report.json", report)
    return report


def finalize(cfg: SearchConfig, study) -> dict:
    """Choose the best recipe, re-run it with `final_seeds` seeds on every fold (vote ensemble), test it once on
    the holdout, and deflate its Sharpe by the number of trials. Writes best.json."""
    from optuna.trial import TrialState

    from rl.metrics import periods_per_year
    from rl.tuning.overfit import deflated_sharpe_from_moments

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    family = [t for t in complete if _trial_algo(t) in DQN_FAMILY]
    if not family:
        raise ConfigError("no DQN-family trial of the study completed; nothing to ship (see trials/ and the "
                          "worker logs; --algos must include dqn or qrdqn)")
    best = max(family, key=lambda t: t.value)
    others = [t for t in complete if _trial_algo(t) not in DQN_FAMILY]
    best_other = max(others, key=lambda t: t.value) if others else None
    recipe = TrainConfig.model_validate_json(best.user_attrs["config"]).model_copy(
        update={"seed": 0, "torch_threads": None})
    _write_json(cfg.run_dir / "best.json", recipe.model_dump(mode="json"))
    from trader_core.runtime import configure_torch

    configure_torch(cfg.torch_threads)
    plan = plan_folds(cfg.datasets, cfg.folds, cfg.train_bars, max_lookback(), cfg.interval)
    cache = MarketCache(plan)
    seeds = list(range(cfg.final_seeds))
    fold_rows, _ = evaluate_folds(recipe, cache, seeds=seeds)
    holdout_rows, _ = evaluate_holdout(recipe, cache, seeds)
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    ua = best.user_attrs
    dsr = deflated_sharpe_from_moments(
        ua["oos_sharpe_per_bar"], ua["oos_skew"], ua["oos_kurtosis"], ua["oos_bars"], len(finished),
        [t.user_attrs["oos_sharpe_per_bar"] for t in complete],
        periods_per_year(cache.candles[cfg.datasets[0]].interval_s))
    fold_summary = verdict(fold_rows)
    from rl.tuning.fold_plot import plot_fold_report

    plot_fold_report(fold_rows + holdout_rows, cfg.run_dir / "fold_report.png",
                     title=f"trial {best.number} ({recipe.algo}), vote of seeds {seeds}")
    return {"plan": plan.describe(), "objective": "median over windows of (policy Sharpe - best baseline Sharpe), "
            f"minus {INACTIVE_PENALTY:g} when the policy does not act on the market",
            "best": {"number": best.number, "value": best.value, "params": best.params,
                     "median_sharpe": ua.get("median_sharpe")},
            "best_other_algorithm": None if best_other is None else {
                "number": best_other.number, "algo": _trial_algo(best_other), "value": best_other.value,
                "median_sharpe": best_other.user_attrs.get("median_sharpe"),
                "scores_better_than_shipped": best_other.value > best.value},
            "best_config": "best.json", "seeds": seeds,
            "folds": fold_rows, "fold_summary": fold_summary,
            "target": target_met(fold_summary, dsr.to_dict()), "plot": "fold_report.png",
            "holdout": holdout_rows, "holdout_summary": verdict(holdout_rows),
            "deflated_sharpe": dsr.to_dict()}


def verdict(rows: list[dict]) -> dict:
    """Median Sharpe and return of the policy and each baseline, in how many windows the policy beat each and
    the best of them, and whether it acts on the market."""
    from rl.tuning.fold_eval import BASELINES, MAX_POSITION_PREDICTABILITY

    out: dict = {"windows": len(rows)}
    for name in ("policy", *BASELINES):
        out[name] = {"median_sharpe": float(np.median([r[name]["sharpe"] for r in rows])),
                     "median_return": float(np.median([r[name]["total_return"] for r in rows])),
                     "median_max_drawdown": float(np.median([r[name]["max_drawdown"] for r in rows]))}
    for name in BASELINES:
        out[f"policy_sharpe_ge_{name}"] = int(sum(r["policy"]["sharpe"] >= r[name]["sharpe"] - 1e-12 for r in rows))
    for measure in ("sharpe", "return", "drawdown"):
        out[f"beats_best_{measure}"] = int(sum(r["judgement"][f"beats_best_{measure}"] for r in rows))
    if all("seed_median_sharpe" in r for r in rows):
        out["seed_median_sharpe_ge_best"] = int(sum(
            r["seed_median_sharpe"] >= r[r["judgement"]["best_sharpe"]]["sharpe"] - 1e-12 for r in rows))
    out["drawdown_le_buy_and_hold"] = int(sum(r["judgement"]["drawdown_le_buy_and_hold"] for r in rows))
    out["trades_in_every_window"] = all(r["policy"]["n_trades"] > 0 for r in rows)
    pp = [r["policy"]["position_predictability"] for r in rows]
    out["position_predictability"] = {"mean": float(np.mean(pp)), "max": float(np.max(pp)),
                                      "limit": MAX_POSITION_PREDICTABILITY}
    return out


def _trial_algo(trial) -> str:
    return trial.user_attrs.get("algo") or trial.params.get("algo") or "dqn"


def target_met(fold_summary: dict, dsr: dict) -> dict:
    """The issue's bar for a timing edge, each part on its own line of the report."""
    parts = {
        "sharpe_ge_best_baseline_in_4_of_6": fold_summary.get("seed_median_sharpe_ge_best",
                                                              fold_summary["beats_best_sharpe"]) >= 4,
        "drawdown_le_buy_and_hold_every_window": fold_summary["drawdown_le_buy_and_hold"] == fold_summary["windows"],
        "deflated_sharpe_ge_0_95": dsr["deflated_sharpe"] >= 0.95,
        "trades_in_every_window": fold_summary["trades_in_every_window"],
        "position_predicts_le_80pct": fold_summary["position_predictability"]["mean"]
        <= fold_summary["position_predictability"]["limit"],
    }
    return {**parts, "all": all(parts.values())}
