"""`trader run --learn`: the glue between the decision loop and rl.online.

Per tick the loop calls `OnlineSession.serving()` (the policy to ask, swapped when the gate promotes or a
rollback lands), then `record()` once the tick's fill is known. `record` first completes the previous decision
(its reward from the realised fill, marked at this bar, and this tick's observation as its next state), then
appends this decision - all in SQLite before the next decision is made. The learner runs in its own thread; the
loop never waits for it. Everything a restart needs (rows, wallet, learner step, priorities, serving policy)
is on disk under RUN_DIR/learn/.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rl.online.gate import GateConfig, GateDecision, run_gate
from rl.online.learner import Learner, LearnerConfig, LearnerThread, load_candidate
from rl.online.replay_store import Fill, LiveDecision, ReplayStore
from rl.online.serving import LEARN_DIR, append_promotion, promote, read_serving
from rl.online.transitions import env_action, history_transitions, live_reward

RUN_ID = "run"  # one learning run per run directory; the key is (run id, tick)


@dataclass
class Wallet:
    eth: float
    usdc: float

    def value(self, price: float) -> float:
        return self.eth * price + self.usdc


def learn_dir_exists(out: str | Path | None) -> bool:
    return out is not None and (Path(out).expanduser() / LEARN_DIR / "replay.sqlite").exists()


class OnlineSession:
    def __init__(self, run_dir: Path, incumbent, learner_cfg: LearnerConfig, gate_cfg: GateConfig,
                 notify=lambda line: None, tensorboard: bool = True):
        from rl.policy import Policy

        self.run_dir, self.incumbent, self.notify = Path(run_dir), incumbent, notify
        self.learn_dir = self.run_dir / LEARN_DIR
        self.learn_dir.mkdir(exist_ok=True)
        self.store = ReplayStore(self.learn_dir / "replay.sqlite")
        self.learner_cfg = learner_cfg.model_copy(update={"gamma": incumbent.config.gamma})
        self.gate_cfg = gate_cfg
        self._policy_cls = Policy
        self._lock = threading.Lock()
        self.latest_candles = None
        self.latest_bar: int | None = None
        self.promotions = 0
        self.last_gate: GateDecision | None = None
        self._serving_version = -1
        self._serving = incumbent
        self.serving()
        self.writer = _summary_writer(self.learn_dir / "tb") if tensorboard else None
        self.obs_dim = len(incumbent.observation_names)
        self.thread = LearnerThread(self._make_learner, self.learn_dir / "candidates", self._on_candidate,
                                    self._held_out_from, self._log)

    # -- resume ------------------------------------------------------------------------------------------
    def last(self) -> LiveDecision | None:
        return self.store.last_decision(RUN_ID)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.thread.stop()
        if self.writer:
            self.writer.close()

    # -- the serving policy --------------------------------------------------------------------------------
    def _policy_from(self, checkpoint: Path):
        inc = self.incumbent
        return self._policy_cls([load_candidate(checkpoint)], inc.config, checkpoint.parent, inc.member_dirs)

    def serving(self):
        """The policy serving now (re-read when serving.json's version changes: a promotion or a rollback)."""
        state = read_serving(self.run_dir)
        if state.version != self._serving_version:
            entry = state.current
            policy = self.incumbent if entry.kind == "incumbent" else self._policy_from(self.run_dir / entry.checkpoint)
            with self._lock:
                self._serving, self._serving_version = policy, state.version
            if state.version:
                self.notify(f"serving policy: {entry.kind}" + (f" (learner step {entry.step})" if entry.step else ""))
        return self._serving

    # -- the decision loop's side ---------------------------------------------------------------------------
    def record(self, tick: int, obs: dict[str, float], trade: str, position: float, fill: Fill, bar_time: int,
               price: float, wallet: Wallet, decision_json: str) -> None:
        """Complete the previous decision with this bar, then append this one (both before the next decision)."""
        vec = np.array(list(obs.values()), dtype=np.float32) if obs else np.zeros(self.obs_dim, np.float32)
        prev = self.store.last_decision(RUN_ID)
        if prev is not None and not prev.complete and prev.tick < tick:
            self.complete_previous(prev, vec, price)
        cfg = self.incumbent.config
        action = env_action(trade, position, cfg.env.action_names)
        self.store.record_decision(RUN_ID, tick, vec, action, fill, bar_time, price, wallet.eth, wallet.usdc,
                                   usable=bool(obs) and len(obs) == self.obs_dim, decision=decision_json)
        self.latest_bar = bar_time

    def complete_previous(self, prev: LiveDecision, next_obs: np.ndarray, price: float) -> None:
        fill = self.store.fill_of(RUN_ID, prev.tick)
        w = Wallet(prev.wallet_eth, prev.wallet_usdc)
        before = w.value(prev.price) + fill.cost_usd  # the wallet's value at the decision's price, before the fill
        cfg = self.incumbent.config
        reward = live_reward(before, w.value(price), fill, cfg.env.cost_penalty, cfg.reward_scale)
        self.store.complete(RUN_ID, prev.tick, reward, next_obs)

    def observe_market(self, candles) -> None:
        self.latest_candles = candles  # one reference swap; the gate reads it from the learner thread

    def status(self, tick: int) -> str:
        lrn = self.thread.learner
        if self.thread.error is not None:
            return f"learner stopped: {self.thread.error}"
        if lrn is None:
            return "learner: preparing the training-data replay"
        gate = self.last_gate
        g = "no gate yet" if gate is None else ("promoted" if gate.promoted else "kept incumbent")
        return (f"learn: step {lrn.step}, buffer {len(lrn.per)}, loss {lrn.last_loss:.4f}, |TD| {lrn.last_td:.3f}, "
                f"promotions {self.promotions}, last gate {g}, serving v{self._serving_version}")

    # -- the learner thread's side --------------------------------------------------------------------------
    def _make_learner(self) -> Learner:
        store = ReplayStore(self.store.path)  # its own connection: SQLite connections are not shared by threads
        cfg = self.learner_cfg
        if cfg.history and store.count(RUN_ID, "history") == 0:
            h = history_transitions(self.incumbent, cfg.history, seed=cfg.seed)
            store.add_history(RUN_ID, h.obs, h.actions, h.rewards, h.next_obs, h.dones)
        return Learner(store, self.obs_dim, len(self.incumbent.action_names), cfg, self.learn_dir / "learner.pt")

    def _held_out_from(self) -> int | None:
        """Live rows whose bar is inside the gate's window are not trained on until the window moves past them."""
        if self.latest_bar is None:
            return None
        interval = int(self.incumbent.interval_s or 3600)
        return self.latest_bar - self.gate_cfg.window_bars * interval

    def _on_candidate(self, learner: Learner, checkpoint: Path) -> None:
        candles = self.latest_candles
        if candles is None:
            return
        candidate = self._policy_from(checkpoint)
        with self._lock:
            serving = self._serving
        name = str(checkpoint.relative_to(self.run_dir))
        decision = run_gate(candidate, serving, candles, self.gate_cfg, learner.step, name)
        record = decision.model_dump()
        record["incumbent"] = "incumbent" if serving is self.incumbent else str(read_serving(self.run_dir).current.checkpoint)
        if decision.promoted:
            promote(self.run_dir, checkpoint, learner.step)
            self.promotions += 1
        append_promotion(self.run_dir, record)
        self.last_gate = decision
        if self.writer:
            self.writer.add_scalar("gate/promoted", float(decision.promoted), learner.step)
            self.writer.add_scalar("gate/promotions", self.promotions, learner.step)
            if decision.candidate_metrics and decision.incumbent_metrics:
                self.writer.add_scalar("gate/candidate_sharpe", decision.candidate_metrics.sharpe, learner.step)
                self.writer.add_scalar("gate/incumbent_sharpe", decision.incumbent_metrics.sharpe, learner.step)

    def _log(self, learner: Learner) -> None:
        if self.writer is None:
            return
        w, s = self.writer, learner.step
        w.add_scalar("learner/loss", learner.last_loss, s)
        w.add_scalar("learner/td_error", learner.last_td, s)
        w.add_scalar("learner/priority_max", learner.per.max_priority, s)
        w.add_scalar("learner/priority_total", learner.per.tree.total, s)
        w.add_scalar("learner/buffer", len(learner.per), s)


def _summary_writer(folder: Path):
    """TensorBoard scalars when tensorboard is installed; the run works the same without it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))


def paper_fill(side: str, quote_price: float, amount_in: float, amount_out: float, fee: float,
               gas_usd: float = 0.0) -> Fill:
    """The Fill of a paper or quoted trade: executed price from the amounts, fee at the pool's rate, and the rest
    of the shortfall against the quoted (mid) price as price impact, so fee + impact is exactly what the wallet
    lost against the mid price."""
    if side == "buy":  # amount_in USDC -> amount_out ETH
        notional, executed = amount_in, amount_in / amount_out if amount_out > 0 else float("inf")
        shortfall = amount_in - amount_out * quote_price
    else:  # amount_in ETH -> amount_out USDC
        notional, executed = amount_in * quote_price, amount_out / amount_in if amount_in > 0 else 0.0
        shortfall = notional - amount_out
    fee_usd = notional * fee
    return Fill(side, quote_price, executed, notional, fee_usd, max(0.0, shortfall - fee_usd), gas_usd)
