"""A recipe judged the way the search judges it: train on each walk-forward fold, trade the fold's unseen test
window on every asset, next to buy-and-hold, SMA crossover and flat over the same bars and costs, and two
baselines at the policy's own risk (`rl.training.baselines`: constant exposure at its average exposure, volatility
targeting at its realised volatility); each row says how the policy fares against the best of them and how
much of its decisions its position alone predicts.

The folds are fixed in time for a whole study (embargo = the longest look-back the search space can sample),
so every trial is measured on identical windows; the final test period after them is never touched here
except by `evaluate_holdout`, which the search runs once, for the chosen recipe.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from rl.training.config import TrainConfig
from rl.tuning.walkforward import Fold, walk_forward_folds

BASELINES = ("buy_and_hold", "sma", "flat", "const_exposure", "vol_target")
POLICY_KEYS = ("total_return", "sharpe", "max_drawdown", "n_trades", "time_in_market", "fees_paid", "turnover",
               "mean_exposure")
MAX_POSITION_PREDICTABILITY = 0.8  # a policy whose position predicts more of its decisions ignores the market
INACTIVE_PENALTY = 10.0  # subtracted from the score of a recipe that does not act on the market


def iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


@dataclass
class FoldPlan:
    """Walk-forward folds on the first dataset's bars, mapped to every dataset by timestamp."""

    datasets: list[str]
    interval: str | None
    folds: list[Fold]
    holdout: tuple[int, int]  # the final test period (bars of the first dataset)
    holdout_train: tuple[int, int]
    embargo: int
    train_bars: int
    timestamps: np.ndarray = field(repr=False)

    def describe(self) -> dict:
        ts = self.timestamps

        def span(r: tuple[int, int]) -> dict:
            return {"start": iso(ts[r[0]]), "end": iso(ts[r[1] - 1]), "bars": r[1] - r[0]}

        return {"datasets": self.datasets, "embargo_bars": self.embargo, "train_bars": self.train_bars,
                "folds": [{"fold": f.index, "train": span(f.train), "test": span(f.test)} for f in self.folds],
                "holdout": {"train": span(self.holdout_train), "test": span(self.holdout)}}


def plan_folds(datasets: list[str], n_folds: int = 3, train_bars: int = 3000, embargo: int = 336,
               interval: str | None = None, val_end: str | None = None) -> FoldPlan:
    """Folds inside the bars before `val_end` (default: 85% of the range, where `trader rl train`'s test split
    starts); the holdout is that test split, trained on the `train_bars` bars ending `embargo` bars before it."""
    from rl.envs.data import load_candles, parse_time

    primary = load_candles(datasets[0], interval)
    ts = primary.timestamps
    end_s = parse_time(val_end) if val_end else int(ts[0] + 0.85 * (ts[-1] - ts[0]))
    search_stop = int(np.searchsorted(ts, end_s, side="left"))
    folds = walk_forward_folds(len(primary), n_folds, embargo, min_train=train_bars, stop=search_stop,
                               train_bars=train_bars)
    hold_a = min(len(primary), search_stop + embargo)
    hold_train = (max(0, hold_a - embargo - train_bars), hold_a - embargo)
    return FoldPlan(list(datasets), interval, folds, (hold_a, len(primary)), hold_train, embargo, train_bars, ts)


class MarketCache:
    """Candles loaded once per worker, and baseline results computed once per (dataset, window)."""

    def __init__(self, plan: FoldPlan) -> None:
        from rl.envs.data import load_candles

        self.plan = plan
        self.candles = {d: load_candles(d, plan.interval) for d in plan.datasets}
        self._baselines: dict = {}

    def bars(self, dataset: str, r: tuple[int, int]) -> tuple[int, int]:
        """A bar range of the first dataset as the same time span in `dataset`."""
        ts = self.plan.timestamps
        own = self.candles[dataset].timestamps
        a = int(np.searchsorted(own, ts[r[0]], side="left"))
        b = int(np.searchsorted(own, ts[r[1] - 1], side="right"))
        return a, b

    def baselines(self, dataset: str, r: tuple[int, int], env_cfg) -> dict:
        """Buy-and-hold, SMA and flat over bars `r`: full-size positions, the recipe's fee, depth and gas."""
        from rl.envs.trading_env import EnvConfig
        from rl.training.evaluate import baseline_env, buy_and_hold_fn, flat_fn, run_backtest, sma_fn
        from rl.envs.features import FeatureSpec, build_features
        from rl.metrics import compute_metrics

        cfg = baseline_env(EnvConfig(fee=env_cfg.fee, pool_depth_usd=env_cfg.pool_depth_usd, gas_usd=env_cfg.gas_usd))
        key = (dataset, r, cfg.model_dump_json())
        if key not in self._baselines:
            c = self.candles[dataset]
            feats = build_features(c, FeatureSpec(use_volume=False), fit_range=(0, r[0]))
            rules = {"buy_and_hold": buy_and_hold_fn(cfg), "sma": sma_fn(cfg, feats), "flat": flat_fn(cfg)}
            self._baselines[key] = {
                name: _summary(compute_metrics(run_backtest(feats, cfg, *r, fn), c.interval_s))
                for name, fn in rules.items()}
        return self._baselines[key]


def _summary(m: dict) -> dict:
    return {k: float(m[k]) for k in POLICY_KEYS}


def train_on(cfg: TrainConfig, cache: MarketCache, train_range: tuple[int, int], seeds: list[int]):
    """Features of every dataset (one scaler, fitted on the training windows) and one model per seed."""
    from rl.training.train import features_with_shared_scaler, fit_model, pooled_training_set

    datasets = cache.plan.datasets
    candles = [cache.candles[d] for d in datasets]
    ranges = [cache.bars(d, train_range) for d in datasets]
    feats = features_with_shared_scaler(candles, cfg.features, ranges)
    train_feats, rng = pooled_training_set(feats, ranges)
    models = [fit_model(cfg.model_copy(update={"seed": s}), train_feats, rng) for s in seeds]
    return dict(zip(datasets, feats)), models


def evaluate_window(cfg: TrainConfig, cache: MarketCache, train_range: tuple[int, int],
                    test_range: tuple[int, int], label, seeds: list[int] | None = None
                    ) -> tuple[list[dict], list[np.ndarray]]:
    """Train on `train_range` (one model per seed), trade `test_range` on every dataset: one row per dataset
    (`policy` is the single model, or the seeds' majority vote, with each seed under `seeds`), plus the
    policy's per-bar returns (for the deflated Sharpe)."""
    from rl.training.baselines import constant_exposure, decisions_on_states, judge, position_predictability, vol_target
    from rl.training.ensemble import ensemble_action_fn
    from rl.training.evaluate import baseline_env, run_backtest
    from rl.metrics import compute_metrics

    seeds = [cfg.seed] if seeds is None else list(seeds)
    feats, models = train_on(cfg, cache, train_range, seeds)
    rows, returns = [], []
    for d in cache.plan.datasets:
        r = cache.bars(d, test_range)
        interval = cache.candles[d].interval_s
        res = run_backtest(feats[d], cfg.env, *r, ensemble_action_fn(models))
        ts = cache.candles[d].timestamps
        row = {"fold": label, "dataset": d, "start": iso(ts[r[0]]), "end": iso(ts[r[1] - 1]),
               "bars": r[1] - r[0], "policy": _summary(compute_metrics(res, interval)),
               **cache.baselines(d, r, cfg.env)}
        candles, base_env = cache.candles[d], baseline_env(cfg.env)
        row["const_exposure"] = constant_exposure(candles, *r, base_env, row["policy"]["mean_exposure"])
        row["vol_target"] = vol_target(candles, *r, base_env, res.returns)
        row["policy"]["position_predictability"] = position_predictability(
            *decisions_on_states(models, feats[d], cfg.env, *r))
        row["judgement"] = judge(row)
        if len(models) > 1:
            row["seeds"] = {str(s): _summary(compute_metrics(run_backtest(feats[d], cfg.env, *r,
                                                                           ensemble_action_fn([m])), interval))
                            for s, m in zip(seeds, models)}
            row["seed_median_sharpe"] = float(np.median([s["sharpe"] for s in row["seeds"].values()]))
        else:
            row["seed"] = seeds[0]
        rows.append(row)
        returns.append(res.returns)
    return rows, returns


def evaluate_folds(cfg: TrainConfig, cache: MarketCache, on_fold=None, seeds: list[int] | None = None
                   ) -> tuple[list[dict], np.ndarray]:
    """Every fold in order; `on_fold(k, rows_so_far)` may raise to stop early (pruning)."""
    rows, returns = [], []
    for fold in cache.plan.folds:
        fold_rows, fold_returns = evaluate_window(cfg, cache, fold.train, fold.test, fold.index, seeds)
        rows += fold_rows
        returns += fold_returns
        if on_fold is not None:
            on_fold(fold.index, rows)
    return rows, np.concatenate(returns) if returns else np.zeros(0)


def evaluate_holdout(cfg: TrainConfig, cache: MarketCache, seeds: list[int] | None = None
                     ) -> tuple[list[dict], np.ndarray]:
    """The final test period the search never saw, trained like a fold on the window before it."""
    rows, returns = evaluate_window(cfg, cache, cache.plan.holdout_train, cache.plan.holdout, "holdout", seeds)
    return rows, np.concatenate(returns)


def median_sharpe(rows: list[dict]) -> float:
    return float(np.median([r["policy"]["sharpe"] for r in rows])) if rows else float("nan")


def acts_on_market(rows: list[dict]) -> bool:
    """Trades in every window, and its position alone predicts at most 80% of its decisions (on average)."""
    return bool(rows) and all(r["policy"]["n_trades"] > 0 for r in rows) and float(
        np.mean([r["policy"]["position_predictability"] for r in rows])) <= MAX_POSITION_PREDICTABILITY


def recipe_score(rows: list[dict]) -> float:
    """What the search maximises: the median over windows of the policy's Sharpe minus the best baseline's
    (at the policy's own risk included), less a penalty when it does not act on the market."""
    if not rows:
        return float("nan")
    excess = float(np.median([r["judgement"]["sharpe_excess_over_best"] for r in rows]))
    return excess if acts_on_market(rows) else excess - INACTIVE_PENALTY
