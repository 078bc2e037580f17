"""`trader bench learn`: decision latency with the online learner (its process) training beside the loop vs without.

One process, one policy, one replay feed: blocks of decisions without the learner, with it (its thread
training), and without it again, so drift on a shared machine shows up as a difference between the two
"without" blocks. A decision is what `trader run --learn` does per tick: the feed's next bar, the serving policy's
signal, and the transition appended to the SQLite replay store.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel


class LearnBench(BaseModel):
    decisions_per_block: int
    p50_without_ms: float
    p95_without_ms: float
    p50_with_ms: float
    p95_with_ms: float
    p95_ratio: float  # with / without: the target is <= 1.2
    drift_ratio: float  # second "without" block's p95 / first's: how noisy the machine was
    learner_steps: int
    learner_steps_per_s: float


def _time_block(n: int, state: dict, online, feed) -> list[float]:
    from agent.market import policy_signal
    from agent.loop.online import Wallet
    from rl.online.replay_store import Fill

    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        if not feed.advance():
            raise RuntimeError("the replay ran out of bars; lower --decisions")
        snap = feed.read()
        view = policy_signal(online.serving(), snap, 0.5, "paper wallet")
        online.observe_market(snap.candles, state["tick"])
        online.record(state["tick"], view.observation, view.action, 0.5, Fill.none(snap.price), snap.last_time,
                      snap.price, Wallet(1.0, snap.price), "{}")
        out.append((time.perf_counter() - t0) * 1000)
        state["tick"] += 1
    return out


def _learner_step(online) -> int:
    import json

    raw = online.store.get_meta("learner_status")
    return 0 if raw is None else int(json.loads(raw)["step"])


def bench_learn(decisions: int = 150, history: int = 2000) -> LearnBench:
    from agent.loop.online import OnlineSession
    from rl.online.gate import GateConfig
    from rl.online.learner import LearnerConfig
    from rl.policy import Policy
    from trader_core.feed import ReplayFeed
    from trader_core.market_data import load_candles

    policy = Policy.load("default")
    candles = policy.select_columns(load_candles(policy.config.data, policy.config.interval))
    feed = ReplayFeed.last_bars(candles, 3 * decisions + 20)
    with tempfile.TemporaryDirectory(prefix="bench-learn-") as tmp:
        online = OnlineSession(Path(tmp), policy, "default", LearnerConfig(history=history, candidate_every=10**9),
                               GateConfig(), tensorboard=False)
        state = {"tick": 0}
        _time_block(10, state, online, feed)  # warm-up
        before = _time_block(decisions, state, online, feed)
        online.start()
        deadline = time.time() + 300
        while _learner_step(online) < 50:  # training, not only preparing its data
            if time.time() > deadline or online.store.get_meta("learner_error") or not online.proc.is_alive():
                raise RuntimeError(f"the learner did not start: {online.store.get_meta('learner_error')}")
            time.sleep(0.1)
        s0, t0 = _learner_step(online), time.perf_counter()
        during = _time_block(decisions, state, online, feed)
        steps, dt = _learner_step(online) - s0, time.perf_counter() - t0
        online.stop()
        after = _time_block(decisions, state, online, feed)
        online.store.close()
    without = np.array(before + after)
    p95 = lambda a: float(np.percentile(a, 95))  # noqa: E731
    return LearnBench(decisions_per_block=decisions, p50_without_ms=float(np.median(without)),
                      p95_without_ms=p95(without), p50_with_ms=float(np.median(during)), p95_with_ms=p95(during),
                      p95_ratio=p95(during) / p95(without), drift_ratio=p95(after) / p95(before),
                      learner_steps=steps, learner_steps_per_s=steps / dt)
