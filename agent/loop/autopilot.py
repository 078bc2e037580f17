"""`trader run`: the autonomous loop (seed's agent). Each tick: the feed's next candles -> RL signal + trader-model
opinion -> `TradeDecision` -> paper trade, guarded execution on the local chain, or observe only -> journal.

The market comes from one `CandleFeed`: the chain's pool (its swaps continuing the policy's history) when a
chain answers, real closes swapped into the local replica one bar of block time per tick (`--feed chain-replay`:
the pool's prices, impact and gas), else a replay of the policy's dataset, one bar per tick, so paper trading moves with the market
it is shown. Paper trading uses the paper wallet's position, never the real wallet's. A tick that brings no
new bar and no new price is a frozen market: said once, held, not traded on; so is a stale feed and a signal
that holds for safety (look-back not covered). Risk limits live in onchain's proposal check; the kill switch is
a file `$TRADER_HOME/KILL` (or TRADER_KILL=1). Decisions are appended to `decisions.jsonl` beside `config.json`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field

from agent.market import (PolicyView, TraderOpinion, market_summary, position_fraction,
                          trader_question, utc, vote_words, wallet_signal)
from agent.turn.session import AgentConfig, build_agent
from agent.loop.trading import Action, TradeDecision, act, run_key
from onchain.models import Portfolio
from trader_core.errors import ConfigError
from trader_core.feed import CandleFeed, MarketSnapshot, ReplayFeed

MAX_INTERVAL_S = 7 * 86_400


class RunConfig(AgentConfig):
    interval_s: float | None = Field(None, ge=0, le=MAX_INTERVAL_S,
                                     description="seconds between ticks (default: 10 live, 0 for a replay)")
    iterations: int = Field(10, ge=1, le=100_000, description="ticks to run")
    execute: bool = Field(False, description="send guarded swaps to the local chain (else paper trades)")
    observe: bool = Field(False, description="decide and journal only; no trades at all")
    trade_eth: float = Field(0.1, gt=0, le=1e6, description="size of one trade in ETH (buys spend its USDC value)")
    ask_model: bool = Field(True, description="ask the trader model for an opinion each tick")
    memory: int = Field(5, ge=0, le=50, description="recent decisions shown to the decision prompt")
    feed: Literal["auto", "chain", "replay", "chain-replay"] = Field(
        "auto", description="auto: the chain if one answers, else a replay of the policy's data, one bar per tick; "
        "chain-replay: the data's real closes swapped into the local replica, one bar of block time per tick")
    data: str | None = Field(None, description="dataset replayed by --feed replay or chain-replay (default: the "
                             "policy's data)")
    out: str | None = Field(None, description="run directory; default $TRADER_HOME/runs/agent-<time>")
    learn: bool = Field(False, description="learn online from every fill (replay store, prioritised replay, "
                        "learner thread, promotion gate); rerun with the same --out to resume after a crash")
    gate_window: int = Field(72, ge=8, le=10_000, description="--learn: bars in the gate's held-out window")
    learn_history: int = Field(5000, ge=0, le=1_000_000, description="--learn: training-data transitions mixed in")
    candidate_every: int = Field(1000, ge=1, le=1_000_000, description="--learn: learner steps between candidates")
    learner_nice: int = Field(10, ge=0, le=19, description="--learn: niceness of the learner process (10: the "
                              "decision loop comes first on busy cores)")


DECIDE_SCHEMA = {
    "type": "object",
    "properties": {"action": {"type": "string", "enum": ["BUY", "SELL", "HOLD"]},
                   "size_fraction": {"type": "number"}, "reason": {"type": "string"}},
    "required": ["action", "reason"],
}


def kill_switch_on() -> bool:
    from trader_core.runtime import trader_home

    return os.environ.get("TRADER_KILL") == "1" or (trader_home() / "KILL").exists()


def parse_duration(text: str | float | None) -> float | None:
    """'10s', '1.5m', '2h', '1d' or plain seconds -> seconds; anything else is a one-line ConfigError."""
    if text is None or isinstance(text, (int, float)):
        seconds = None if text is None else float(text)
    else:
        raw = str(text).strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
        try:
            seconds = float(raw[:-1]) * units[raw[-1]] if raw and raw[-1] in units else float(raw)
        except (ValueError, OverflowError):
            raise ConfigError(f"--interval {text!r} is not a duration; use e.g. 10s, 1m, 2h") from None
    if seconds is not None and not (math.isfinite(seconds) and 0 <= seconds <= MAX_INTERVAL_S):
        raise ConfigError(f"--interval {text!r} must be between 0s and 7d")
    return seconds


def run_dir(out: str | None, resume: bool = False) -> Path:
    """The run's folder: a new folder (or an empty one) whose parent exists; one-line errors otherwise.
    `resume`: an earlier `--learn` run's folder, continued where it stopped."""
    import os

    from trader_core.runtime import trader_home

    if resume and out is not None:
        path = Path(out).expanduser()
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {out}: cannot write into the run folder; pass a folder you can write")
        return path

    if out is None:
        path = trader_home() / "runs" / time.strftime("agent-%Y%m%d-%H%M%S")
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder for config.json and decisions.jsonl")
    if path.is_dir() and any(path.iterdir()):
        raise ConfigError(f"--out {out} already holds files (an earlier run?); pass a new or empty folder")
    if not path.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {path.parent} does not exist; create it first or pick another")
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    return path


def memory_text(history: list[TradeDecision], n: int) -> str:
    if not history or n == 0:
        return "(none yet)"
    return "\n".join(f"tick {d.tick}: {d.action} {d.size_eth:g} ETH at {d.price:.2f} ({d.status})"
                     + ("" if d.pnl_usd is None else f", PnL {d.pnl_usd:+.2f} USD") for d in history[-n:])


def decide(agent, signal: PolicyView, opinion: TraderOpinion | None, market: dict, wallet: dict,
           history: list[TradeDecision], cfg: RunConfig) -> tuple[Action, float, str, str]:
    """The LLM decides unless it is the weak embedded model or fails; then the RL signal decides."""
    from langchain_core.messages import HumanMessage

    from prompts import render_prompt

    rl_reason = f"RL policy says {signal.action} ({vote_words(signal)})"
    if agent.llm.current.weak:
        return signal.action, 1.0, rl_reason, "rl"
    prompt = render_prompt("decision", market=json.dumps(market), signal=json.dumps(
        signal.model_dump(include={"action", "agreement", "q_margin", "q_values", "features", "bar_time"})),
        opinion=opinion.model_dump_json() if opinion else "(not asked)", portfolio=json.dumps(wallet),
        memory=memory_text(history, cfg.memory), limits="enforced by the swap risk check")
    try:
        raw = agent.llm.forced_call("decide", "The trading decision for this tick.", DECIDE_SCHEMA,
                                    [HumanMessage(prompt)])
        action = str(raw.get("action", "")).upper()
        if action not in ("BUY", "SELL", "HOLD"):
            raise ValueError(f"action {action!r}")
        frac = min(1.0, max(0.0, float(raw.get("size_fraction", 1.0) or 1.0)))
        return action, frac, str(raw.get("reason", ""))[:300] or rl_reason, "llm"  # type: ignore[return-value]
    except Exception as exc:  # noqa: BLE001 - any model failure falls back to the policy
        agent.tools.notify and agent.tools.notify(f"decision model failed ({exc}); following the RL policy")
        return signal.action, 1.0, rl_reason, "rl"


class _Market:
    """The loop's view of the market: a feed, and whether each tick brought anything new."""

    def __init__(self, feed: CandleFeed, live: bool):
        self.feed, self.live = feed, live
        self.last: tuple[int, float] | None = None
        self.frozen_since: int | None = None  # tick at which the market stopped moving

    def read(self, tick: int) -> tuple[MarketSnapshot, str | None]:
        """(snapshot, why not to trade on it or None)."""
        snap = self.feed.read()
        key = (snap.last_time, snap.price)
        if snap.stale:
            why = f"stale market: the latest bar ({utc(snap.last_time)}) closed long ago"
        elif key == self.last:
            why = f"frozen market: no new bar or price since tick {self.frozen_since} ({snap.price:,.2f})"
        else:
            why = None
        if why is None or self.frozen_since is None:
            self.frozen_since = tick
        self.last = key
        return snap, why


def _chain_replay_feed(cfg: RunConfig, tools) -> CandleFeed:
    """Real closes swapped into the local replica: enough warm-up bars for the policy's look-back (and, learning,
    for the gate's window), then one bar per tick."""
    from agent.loop.online import LOOKBACK_SLACK
    from onchain.market.replay_feed import ChainReplayFeed
    from trader_core.feed import DatasetFeed

    chain = tools.chain  # raises ChainUnavailable saying how to start the replica
    lookback = int(tools.policy.config.features.lookback)
    warmup = lookback + 1 + (cfg.gate_window + LOOKBACK_SLACK if cfg.learn else 0)
    candles = DatasetFeed(cfg.data or tools.policy.config.data, tools.policy.config.interval).candles
    return ChainReplayFeed(chain, candles, warmup=warmup, ticks=cfg.iterations)


def _open_feed(cfg: RunConfig, tools) -> tuple[CandleFeed, bool]:
    """(feed, is it the chain)."""
    from trader_core.feed import DatasetFeed

    want = cfg.feed
    if want == "chain-replay":
        return _chain_replay_feed(cfg, tools), True
    if want == "chain" or cfg.execute or (want == "auto" and tools.chain_up()):
        tools.chain  # noqa: B018 - raises ChainUnavailable saying how to start the chain
        return tools.feed(), True
    history = tools.history if cfg.data is None else DatasetFeed(cfg.data, tools.policy.config.interval)
    return ReplayFeed.last_bars(history.candles, cfg.iterations), False


def run_agent(cfg: RunConfig, emit: Callable[[TradeDecision], None] | None = None, chat=None) -> list[TradeDecision]:
    """Run the loop; returns the decisions (also appended to decisions.jsonl in the run directory)."""
    from trader_core.config import save_config

    if cfg.execute and cfg.observe:
        raise ConfigError("--execute and --observe exclude each other; pick one")
    if cfg.execute and cfg.feed == "replay":
        raise ConfigError("--execute trades on the chain: it runs on the live feed, not --feed replay")
    if cfg.learn and cfg.observe:
        raise ConfigError("--learn learns from fills and --observe makes none; drop one (use --paper trading "
                          "to learn without risk)")
    mode = "observe" if cfg.observe else "execute" if cfg.execute else "paper"
    from agent.loop.online import check_same_run, check_writable, resumable

    resume = cfg.learn and resumable(cfg.out)
    if resume:  # before anything slow starts: a run that cannot resume says so in a second
        from rl.online.replay_store import ReplayStore

        check_same_run(cfg.out, cfg.model_dump())
        ReplayStore(Path(cfg.out).expanduser() / "learn" / "replay.sqlite").close()
    out = run_dir(cfg.out, resume)
    if cfg.learn and not resume:
        check_writable(out)
    agent = build_agent(cfg, confirm=(lambda p: True) if cfg.execute else None, chat=chat, auto_confirm=cfg.execute)
    tools = agent.tools
    notify = tools.notify or (lambda line: None)
    feed, live = _open_feed(cfg, tools)
    market = _Market(feed, live)
    replayed = not live or cfg.feed == "chain-replay"
    interval = cfg.interval_s if cfg.interval_s is not None else (0.0 if replayed else 10.0)
    notify(f"market: {feed.read().source}" + (f", one bar per tick ({cfg.iterations} ticks)" if replayed else ""))
    if not resume:
        save_config(cfg, out)
    wallet: dict[str, float] | None = None
    history: list[TradeDecision] = []
    said: str | None = None
    online, first_tick = _start_learning(cfg, out, tools.policy, notify) if cfg.learn else (None, 0)
    if online is not None and first_tick:
        last = online.last()
        wallet = {"eth": last.wallet_eth, "usdc": last.wallet_usdc}
        for _ in range(first_tick - 1):  # the replay resumes at the bar the stopped run would have shown next
            feed.advance()
        notify(f"resuming at tick {first_tick}: {first_tick} decisions stored, paper wallet {wallet['eth']:.4f} ETH "
               f"+ {wallet['usdc']:.2f} USDC")
    try:
        _loop(cfg, out, tools, feed, market, live, mode, interval, wallet, history, said, online, first_tick,
              emit, agent, notify)
    finally:
        if online is not None:
            online.stop()
    return history


def _start_learning(cfg: RunConfig, out: Path, incumbent, notify):
    from agent.loop.online import start_learning
    from rl.online.gate import GateConfig
    from rl.online.learner import LearnerConfig

    return start_learning(out, incumbent, cfg.policy, LearnerConfig(history=cfg.learn_history,
                                                                    candidate_every=cfg.candidate_every,
                                                                    nice=cfg.learner_nice),
                          GateConfig(window_bars=cfg.gate_window), notify)


def _loop(cfg, out, tools, feed, market, live, mode, interval, wallet, history, said, online, first_tick, emit,
          agent, notify) -> None:
    from agent.loop.online import Wallet

    with (out / "decisions.jsonl").open("a") as log:
        for tick in range(first_tick, cfg.iterations):
            if kill_switch_on():
                notify("kill switch is on ($TRADER_HOME/KILL or TRADER_KILL=1): stopping")
                break
            if tick and not feed.advance():
                notify("the replay reached its last bar: stopping")
                break
            snap, frozen = market.read(tick)
            price = snap.price
            policy = online.serving() if online is not None else tools.policy
            real = tools.call("get_portfolio").value if live and (wallet is None or mode == "execute") else None
            if wallet is None:  # paper trading starts from the real wallet, else 1 ETH + its value in USDC
                wallet = ({"eth": real.eth + real.weth, "usdc": real.usdc} if isinstance(real, Portfolio)
                          else {"eth": 1.0, "usdc": price})
            traded = ({"eth": real.eth + real.weth, "usdc": real.usdc}
                      if mode == "execute" and isinstance(real, Portfolio) else wallet)
            signal = wallet_signal(policy, snap, traded["eth"], traded["usdc"],
                                   "chain wallet" if mode == "execute" else "paper wallet")
            position = position_fraction(traded["eth"], traded["usdc"], price)  # unrounded, for the learner
            if history and history[-1].pnl_usd is None:
                prev = history[-1]
                sign = {"BUY": 1, "SELL": -1, "HOLD": 0}[prev.action]
                prev.pnl_usd = round(sign * prev.size_eth * (price - prev.price), 4)
            hold = frozen or (f"the policy holds: {signal.reason}" if signal.reason else None)
            if hold:
                if hold.split(":")[0] != said:
                    notify(f"tick {tick}: {hold}; holding, no trade")
                said = hold.split(":")[0]
                action, frac, reason, by, opinion = "HOLD", 0.0, hold, "feed" if frozen else "rl", None
            else:
                said = None
                opinion = None
                if cfg.ask_model:
                    # the policy's view of this bar first, as the model was trained, with the wallet it was given
                    question = trader_question(market_summary(snap.candles), traded["eth"], traded["usdc"], signal)
                    opinion = tools.trader_model.ask(question)
                action, frac, reason, by = decide(agent, signal, opinion, {"price": price, "bar": utc(snap.last_time)},
                                                  traded, history, cfg)
            d = TradeDecision(tick=tick, timestamp=int(time.time()), bar_time=snap.last_time, price=price,
                              action=action, size_eth=round(cfg.trade_eth * frac, 6) if action != "HOLD" else 0.0,
                              reason=reason, rl_action=signal.action, rl_agreement=signal.agreement,
                              model_action=opinion.action if opinion else None, decided_by=by, mode=mode,
                              status="stale" if frozen else "none", position=round(position, 4))
            fill = None
            if action != "HOLD" and mode != "observe":
                # a learning run's paper fills are keyed by (run, tick): a tick redone after a kill replaces its row
                key = f"paper-{run_key(out)}-{tick}" if online is not None else None
                fill = act(tools, d, wallet, live, key)
            if mode == "paper":
                d.equity_usd = round(wallet["eth"] * price + wallet["usdc"], 2)
            history.append(d)
            if online is not None:
                from rl.online.replay_store import Fill

                online.observe_market(snap.candles, tick)
                held = wallet if mode == "paper" else traded
                online.record(tick, signal.observation, d.action if fill is not None else "HOLD", position,
                              fill or Fill.none(price), snap.last_time, price, Wallet(held["eth"], held["usdc"]),
                              d.model_dump_json())
            log.write(d.model_dump_json() + "\n")
            log.flush()
            if emit:
                emit(d)
            if online is not None:
                notify(f"tick {tick}: {online.status()}")
            if tick + 1 < cfg.iterations and interval:
                time.sleep(interval)
