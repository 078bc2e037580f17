"""`trader bench search`: trials per hour of `trader rl search` with 1 and with N local workers.

The same small fixed study is run from scratch once per worker count: every trial trains the same algorithm
and network for the same timesteps (queued before the workers start; TPE picks the rest), so trials cost about
the same whichever worker runs them. Each run has its own temporary SQLite study and goes through the real
search code (worker processes, claim lock, heartbeats). Two figures per run: over the whole wall time (worker
start-up included: what a user waits) and over the span from the first trial's start to the last one's end
(the steady rate a long study reaches). The load average before and after says how busy the machine was.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Annotated, Literal

from pydantic import BaseModel, Field


class SearchBenchConfig(BaseModel):
    trials: int = Field(4, ge=1, le=100, description="trials per measured study")
    workers: list[Annotated[int, Field(ge=1, le=64)]] = Field(default_factory=lambda: [1, 2], min_length=1,
                                                          description="worker counts to compare")
    timesteps: int = Field(3000, ge=100, description="training timesteps of every trial")
    folds: int = Field(2, ge=1, le=20, description="walk-forward folds per trial")
    train_bars: int = Field(1000, ge=100, description="bars per training window")
    algo: Literal["dqn", "qrdqn", "ppo", "a2c"] = Field("dqn", description="algorithm of every trial (the search's most common cost)")
    net_arch: Literal["32x32", "64x64", "128x128"] = Field("64x64", description="network of every trial")


def bench_search(bench: SearchBenchConfig) -> dict:
    from rl.tuning.search import SearchConfig, load_or_create_study, search

    runs = []
    for workers in bench.workers:
        with tempfile.TemporaryDirectory(prefix="bench-search-") as out:
            cfg = SearchConfig(out=out, trials=bench.trials, workers=workers, timesteps=bench.timesteps,
                               folds=bench.folds, train_bars=bench.train_bars, finalize=False)
            study = load_or_create_study(cfg)
            for _ in range(bench.trials):
                study.enqueue_trial({"algo": bench.algo, "net_arch": bench.net_arch})
            load = os.getloadavg()[0]
            started = time.perf_counter()
            summary = search(cfg)
            wall = time.perf_counter() - started
        finished = summary["trials"].get("COMPLETE", 0) + summary["trials"].get("PRUNED", 0)
        span = summary["trials_span_seconds"] or wall
        runs.append({"workers": workers, "trials": summary["trials"], "wall_s": round(wall, 1),
                     "span_s": span, "trials_per_hour": round(finished / wall * 3600, 1),
                     "trials_per_hour_span": round(finished / span * 3600, 1),
                     "load_before": round(load, 1), "load_after": round(os.getloadavg()[0], 1)})
    base = runs[0]["trials_per_hour"] or float("nan")
    for run in runs:
        run["speedup"] = round(run["trials_per_hour"] / base, 2)
    return {"config": bench.model_dump(), "cpus": os.cpu_count(), "runs": runs}
