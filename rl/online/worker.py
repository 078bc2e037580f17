"""The learner as its own process: `start_worker(...)` spawns it beside the decision loop.

A process, not a thread: the learner's Python (prioritised sampling, the update) would otherwise share the GIL
with the decision loop and double its latency (measured: p95 2.4x with a thread). Everything crosses through files
the loop already writes: the replay store (transitions in, learner step/loss/promotions out via its meta table),
`learn/window.npz` (the recent bars the gate replays) and `serving.json` (what the loop serves). The worker exits
when asked, or by itself when the process that started it is gone (kill -9 of the loop leaves no orphan learner).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from rl.online.gate import GateConfig, run_gate
from rl.online.learner import Learner, LearnerConfig, load_candidate
from rl.online.replay_store import ReplayStore
from rl.online.serving import LEARN_DIR, append_promotion, promote, read_serving
from rl.online.transitions import history_transitions
from trader_core.paths import atomic_write_bytes

RUN_ID = "run"  # one learning run per run directory; the key is (run id, tick)


class WorkerArgs(BaseModel):
    run_dir: str
    policy: str  # 'default' or a training run directory
    learner: LearnerConfig
    gate: GateConfig
    parent_pid: int
    tensorboard: bool = True


def window_path(run_dir: Path) -> Path:
    return Path(run_dir) / LEARN_DIR / "window.npz"


def write_window(run_dir: Path, candles, bars: int) -> None:
    """The last `bars` bars the loop saw (enough for the gate's window and the features' look-back)."""
    import io

    c = candles.slice(max(0, len(candles) - bars), len(candles))
    buf = io.BytesIO()
    np.savez(buf, timestamps=c.timestamps, open=c.open, high=c.high, low=c.low, close=c.close,
             volume=c.volume if c.volume is not None else np.array([]), name=np.array(c.name),
             interval_s=np.array(c.interval_s or 0))
    atomic_write_bytes(window_path(run_dir), buf.getvalue())


def read_window(run_dir: Path):
    from trader_core.market_data import Candles

    path = window_path(run_dir)
    if not path.exists():
        return None
    with np.load(path) as z:
        vol = z["volume"] if z["volume"].size else None
        return Candles(z["timestamps"], z["open"], z["high"], z["low"], z["close"], vol, str(z["name"]),
                       int(z["interval_s"]) or None)


def start_worker(args: WorkerArgs) -> tuple[mp.process.BaseProcess, object]:
    ctx = mp.get_context("spawn")  # never fork a process that holds torch and SQLite handles
    stop = ctx.Event()
    proc = ctx.Process(target=run_worker, args=(args.model_dump_json(), stop), name="online-learner", daemon=True)
    proc.start()
    return proc, stop


def run_worker(args_json: str, stop) -> None:
    from rl.policy import Policy
    from trader_core.runtime import configure_torch

    args = WorkerArgs.model_validate_json(args_json)
    try:  # background work: the scheduler serves the decision loop first when the cores are busy
        os.nice(args.learner.nice)
    except OSError:
        pass
    configure_torch(1)
    run_dir = Path(args.run_dir)
    learn = run_dir / LEARN_DIR
    store = ReplayStore(learn / "replay.sqlite")
    try:
        incumbent = Policy.load(args.policy)
        cfg = args.learner
        if cfg.history and store.count(RUN_ID, "history") == 0:
            h = history_transitions(incumbent, cfg.history, seed=cfg.seed)
            store.add_history(RUN_ID, h.obs, h.actions, h.rewards, h.next_obs, h.dones)
        lrn = Learner(store, len(incumbent.observation_names), len(incumbent.action_names), cfg,
                      learn / "learner.pt")
        _Loop(args, run_dir, store, lrn, incumbent, stop).run()
    except Exception as exc:  # noqa: BLE001 - the loop reports it on its status line
        store.set_meta({"learner_error": f"{type(exc).__name__}: {exc}"[:300]})
    finally:
        store.close()


class _Loop:
    def __init__(self, args: WorkerArgs, run_dir: Path, store: ReplayStore, lrn: Learner, incumbent, stop):
        self.args, self.run_dir, self.store, self.lrn, self.incumbent, self.stop = (args, run_dir, store, lrn,
                                                                                   incumbent, stop)
        self.promotions = int(store.get_meta("promotions", "0"))
        self.writer = _summary_writer(run_dir / LEARN_DIR / "tb") if args.tensorboard else None
        self.published = 0.0

    def alive(self) -> bool:
        return not self.stop.is_set() and os.getppid() == self.args.parent_pid

    def held_out_from(self) -> int | None:
        """Live rows from this bar on are not trained on: the gate's window (which ends at the last bars the loop
        handed over, possibly a few ticks behind the last decision) and everything after it."""
        last = self.store.last_decision(RUN_ID)
        if last is None:
            return None
        end = last.bar_time
        window = read_window(self.run_dir)
        if window is not None:
            end = min(end, int(window.timestamps[-1]))
        return end - (self.args.gate.window_bars + 1) * int(self.incumbent.interval_s or 3600)

    def run(self) -> None:
        lrn, cfg = self.lrn, self.lrn.cfg
        while self.alive():
            if lrn.step % 50 == 0:
                lrn.ingest(self.held_out_from())
            if lrn.train_step() is None:
                time.sleep(0.1)
                continue
            if time.monotonic() - self.published >= 0.5:  # the loop's status line reads it; cheap, not per step
                self.publish()
            if lrn.step % cfg.checkpoint_every == 0 or lrn.step % cfg.candidate_every == 0:
                lrn.save()  # a candidate always has its learner state saved with it
            if lrn.step % cfg.candidate_every == 0:
                self.gate(lrn.write_candidate(self.run_dir / LEARN_DIR / "candidates"))
            if cfg.step_pause_s:
                time.sleep(cfg.step_pause_s)
        if self.stop.is_set():  # a clean stop saves; a vanished parent means a kill: keep the last auto-save
            lrn.save()
        self.publish()
        if self.writer:
            self.writer.close()

    def publish(self) -> None:
        lrn = self.lrn
        self.published = time.monotonic()
        self.store.set_meta({"learner_status": json.dumps({"step": lrn.step, "buffer": len(lrn.per),
                                                           "loss": lrn.last_loss, "td": lrn.last_td})})
        if self.writer:
            w, s = self.writer, lrn.step
            w.add_scalar("learner/loss", lrn.last_loss, s)
            w.add_scalar("learner/td_error", lrn.last_td, s)
            w.add_scalar("learner/priority_max", lrn.per.max_priority, s)
            w.add_scalar("learner/priority_total", lrn.per.tree.total, s)
            w.add_scalar("learner/buffer", len(lrn.per), s)

    def gate(self, checkpoint: Path) -> None:
        candles = read_window(self.run_dir)
        if candles is None:
            return
        inc = self.incumbent
        candidate = policy_from(inc, checkpoint)
        state = read_serving(self.run_dir)
        entry = state.current
        serving = inc if entry.kind == "incumbent" else policy_from(inc, self.run_dir / entry.checkpoint)
        decision = run_gate(candidate, serving, candles, self.args.gate, self.lrn.step,
                            str(checkpoint.relative_to(self.run_dir)), anchor=inc)
        record = {**decision.model_dump(), "incumbent": entry.checkpoint or "incumbent"}
        if decision.promoted:
            promote(self.run_dir, checkpoint, self.lrn.step)
            self.promotions += 1
        append_promotion(self.run_dir, record)
        self.store.set_meta({"promotions": str(self.promotions),
                             "last_gate": "promoted" if decision.promoted else "kept incumbent"})
        if self.writer:
            s = self.lrn.step
            self.writer.add_scalar("gate/promoted", float(decision.promoted), s)
            self.writer.add_scalar("gate/promotions", self.promotions, s)
            if decision.candidate_metrics and decision.incumbent_metrics:
                self.writer.add_scalar("gate/candidate_sharpe", decision.candidate_metrics.sharpe, s)
                self.writer.add_scalar("gate/incumbent_sharpe", decision.incumbent_metrics.sharpe, s)
            self.writer.flush()


def policy_from(incumbent, checkpoint: Path):
    """A candidate checkpoint served like any policy: the incumbent's config and feature scaler, its Q-network."""
    from rl.policy import Policy

    return Policy([load_candidate(checkpoint)], incumbent.config, checkpoint.parent, incumbent.member_dirs)


def _summary_writer(folder: Path):
    """TensorBoard scalars when tensorboard is installed; the run works the same without it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))
