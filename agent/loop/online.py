"""`trader run --learn`: the glue between the decision loop and rl.online.

Per tick the loop calls `OnlineSession.serving()` (the policy to ask, swapped when the gate promotes or a
rollback lands), then `record()` once the tick's fill is known. `record` first completes the previous decision
(its reward from the realised fill, marked at this bar, and this tick's observation as its next state), then
appends this decision - all in SQLite before the next decision is made. The learner runs in its own process
(`rl.online.worker`); the loop never waits for it. Everything a restart needs (rows, wallet, learner step,
priorities, serving policy) is on disk under RUN_DIR/learn/.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rl.online.gate import GateConfig
from rl.online.learner import LearnerConfig
from rl.online.replay_store import Fill, LiveDecision, ReplayStore
from rl.online.serving import LEARN_DIR, read_serving
from rl.online.transitions import env_action, live_reward
from rl.online.worker import RUN_ID, WorkerArgs, policy_from, start_worker, write_window

LOOKBACK_SLACK = 16  # bars beyond window + look-back written for the gate


@dataclass
class Wallet:
    eth: float
    usdc: float

    def value(self, price: float) -> float:
        return self.eth * price + self.usdc


def resumable(out: str | Path | None) -> bool:
    """An earlier run's folder (its config.json is written before anything else, the learner's store after it)."""
    return out is not None and (Path(out).expanduser() / "config.json").is_file()


class OnlineSession:
    def __init__(self, run_dir: Path, incumbent, policy_name: str, learner_cfg: LearnerConfig, gate_cfg: GateConfig,
                 notify=lambda line: None, tensorboard: bool = True):
        self.run_dir, self.incumbent, self.notify = Path(run_dir), incumbent, notify
        (self.run_dir / LEARN_DIR).mkdir(exist_ok=True)
        self.store = ReplayStore(self.run_dir / LEARN_DIR / "replay.sqlite")
        self.args = WorkerArgs(run_dir=str(self.run_dir), policy=policy_name, gate=gate_cfg,
                               learner=learner_cfg.model_copy(update={"gamma": incumbent.config.gamma}),
                               parent_pid=os.getpid(), tensorboard=tensorboard)
        self.obs_dim = len(incumbent.observation_names)
        self._window_bars = gate_cfg.window_bars + incumbent.config.features.lookback + LOOKBACK_SLACK
        self._serving_version = -1
        self._serving = incumbent
        self.proc = self._stop = None
        self.serving()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def last(self) -> LiveDecision | None:
        return self.store.last_decision(RUN_ID)

    def start(self) -> None:
        self.store.set_meta({"learner_error": ""})
        self.proc, self._stop = start_worker(self.args)

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is not None:
            self._stop.set()
            self.proc.join(timeout)
            if self.proc.is_alive():
                self.proc.terminate()

    # -- the serving policy --------------------------------------------------------------------------------
    def serving(self):
        """The policy serving now (re-read when serving.json's version changes: a promotion or a rollback)."""
        state = read_serving(self.run_dir)
        if state.version != self._serving_version:
            entry = state.current
            self._serving = (self.incumbent if entry.kind == "incumbent"
                             else policy_from(self.incumbent, self.run_dir / entry.checkpoint))
            self._serving_version = state.version
            if state.version:
                self.notify(f"serving policy: {entry.kind}" + (f" (learner step {entry.step})" if entry.step else ""))
        return self._serving

    # -- per tick ------------------------------------------------------------------------------------------
    def record(self, tick: int, obs: dict[str, float], trade: str, position: float, fill: Fill, bar_time: int,
               price: float, wallet: Wallet, decision_json: str) -> None:
        """Complete the previous decision with this bar, then append this one (both before the next decision)."""
        vec = np.array(list(obs.values()), dtype=np.float32) if obs else np.zeros(self.obs_dim, np.float32)
        prev = self.store.last_decision(RUN_ID)
        if prev is not None and not prev.complete and prev.tick < tick:
            self.complete_previous(prev, vec, price)
        action = env_action(trade, position, self.incumbent.config.env.action_names)
        self.store.record_decision(RUN_ID, tick, vec, action, fill, bar_time, price, wallet.eth, wallet.usdc,
                                   usable=bool(obs) and len(obs) == self.obs_dim, decision=decision_json)

    def complete_previous(self, prev: LiveDecision, next_obs: np.ndarray, price: float) -> None:
        fill = self.store.fill_of(RUN_ID, prev.tick)
        w = Wallet(prev.wallet_eth, prev.wallet_usdc)
        before = w.value(prev.price) + fill.cost_usd  # the wallet's value at the decision's price, before the fill
        cfg = self.incumbent.config
        reward = live_reward(before, w.value(price), fill, cfg.env.cost_penalty, cfg.reward_scale)
        self.store.complete(RUN_ID, prev.tick, reward, next_obs)

    def observe_market(self, candles, tick: int) -> None:
        """Hand the gate the recent bars (every few ticks: the window moves one bar per tick)."""
        if tick % 4 == 0:
            write_window(self.run_dir, candles, self._window_bars)

    def status(self) -> str:
        error = self.store.get_meta("learner_error")
        if error:
            return f"learner stopped: {error}"
        raw = self.store.get_meta("learner_status")
        if raw is None:
            return "learner: preparing the training-data replay"
        s = json.loads(raw)
        return (f"learn: step {s['step']}, buffer {s['buffer']}, loss {s['loss']:.4f}, |TD| {s['td']:.3f}, "
                f"promotions {self.store.get_meta('promotions', '0')}, last gate "
                f"{self.store.get_meta('last_gate', 'none yet')}, serving v{self._serving_version}")


RESUME_KEYS = ("policy", "data", "feed", "trade_eth", "iterations", "execute", "learn")


def check_same_run(out: str | Path, settings: dict) -> None:
    """A resumed run must be the run that stopped: `settings` (the new run's `RESUME_KEYS`) equal the saved ones."""
    from trader_core.errors import ConfigError
    from trader_core.paths import read_text_file

    saved = json.loads(read_text_file(Path(out).expanduser() / "config.json", "the run's config.json"))
    diff = [k for k in RESUME_KEYS if saved.get(k) != settings.get(k)]
    if diff:
        raise ConfigError(f"--out {out} holds a learning run with other settings ({', '.join(diff)}); rerun "
                          "with the same options to resume it, or pass a new --out")


def check_writable(out: Path) -> None:
    from trader_core.errors import ConfigError

    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: cannot write into the run folder; pass a folder you can write")


def start_learning(out: Path, incumbent, policy_name: str, learner: LearnerConfig, gate: GateConfig,
                   notify) -> tuple[OnlineSession, int]:
    """The learning session (resumed from RUN_DIR/learn when it exists, its worker started) and the first tick."""
    online = OnlineSession(out, incumbent, policy_name, learner, gate, notify)
    last = online.last()
    first = 0 if last is None else last.tick + 1
    if first:  # decisions.jsonl is rebuilt from the store: a decision is made once it is stored, never twice
        from trader_core.paths import atomic_write_text

        rows = online.store.decisions(RUN_ID)
        atomic_write_text(out / "decisions.jsonl", "".join(r + "\n" for r in rows))
    online.start()
    return online, first


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
