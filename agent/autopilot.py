"""`trader run`: the autonomous loop (seed's agent). Each tick: observe -> RL signal + trader-model opinion ->
`TradeDecision` -> paper trade, guarded execution on the local chain, or observe only -> journal.

A short memory of recent decisions and their PnL goes into the decision prompt. Risk limits live in
onchain's proposal check; the kill switch is a file `$TRADER_HOME/KILL` (or TRADER_KILL=1): when present the
loop stops before the next trade. Decisions are appended to `decisions.jsonl` beside the run's `config.json`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from agent.session import AgentConfig, build_agent
from agent.tools import risk_ok, risk_reason
from trader_core.errors import ConfigError, TraderError

Action = Literal["BUY", "SELL", "HOLD"]


class RunConfig(AgentConfig):
    interval_s: float = Field(10.0, ge=0, description="seconds between ticks")
    iterations: int = Field(10, ge=1, le=100_000, description="ticks to run")
    execute: bool = Field(False, description="send guarded swaps to the local chain (else paper trades)")
    observe: bool = Field(False, description="decide and journal only; no trades at all")
    trade_eth: float = Field(0.1, gt=0, description="size of one trade in ETH (buys spend its USDC value)")
    ask_model: bool = Field(True, description="ask the trader model for an opinion each tick")
    memory: int = Field(5, ge=0, le=50, description="recent decisions shown to the decision prompt")
    out: str | None = Field(None, description="run directory; default $TRADER_HOME/runs/agent-<time>")


class TradeDecision(BaseModel):
    """One tick's decision and what came of it."""

    tick: int
    timestamp: int
    price: float
    action: Action
    size_eth: float
    reason: str
    rl_action: Action
    rl_agreement: float
    model_action: str | None = None
    decided_by: Literal["llm", "rl"]
    mode: Literal["paper", "execute", "observe"]
    status: str = "none"  # none | paper | confirmed | refused | failed
    tx_hash: str | None = None
    detail: str | None = None
    pnl_usd: float | None = Field(None, description="mark-to-market PnL of this decision at the next tick")


DECIDE_SCHEMA = {
    "type": "object",
    "properties": {"action": {"type": "string", "enum": ["BUY", "SELL", "HOLD"]},
                   "size_fraction": {"type": "number"}, "reason": {"type": "string"}},
    "required": ["action", "reason"],
}


def kill_switch_on() -> bool:
    from trader_core.runtime import trader_home

    return os.environ.get("TRADER_KILL") == "1" or (trader_home() / "KILL").exists()


def memory_text(history: list[TradeDecision], n: int) -> str:
    if not history or n == 0:
        return "(none yet)"
    return "\n".join(f"tick {d.tick}: {d.action} {d.size_eth:g} ETH at {d.price:.2f} ({d.status})"
                     + ("" if d.pnl_usd is None else f", PnL {d.pnl_usd:+.2f} USD") for d in history[-n:])


def decide(agent, signal: dict, opinion: dict | None, market: dict, portfolio: dict | None,
           history: list[TradeDecision], cfg: RunConfig) -> tuple[Action, float, str, str]:
    """The LLM decides unless it is the weak embedded model or fails; then the RL signal decides."""
    from langchain_core.messages import HumanMessage

    from prompts import render_prompt

    rl = (signal.get("action") or "HOLD").upper()
    rl_reason = f"RL policy says {rl} (agreement {signal.get('agreement', 0):.0%})"
    if signal.get("reason"):
        rl_reason += f"; safety switch: {signal['reason']}"
    if agent.llm.current.weak:
        return rl, 1.0, rl_reason, "rl"
    prompt = render_prompt("decision", market=json.dumps(market), signal=json.dumps(
        {k: signal.get(k) for k in ("action", "agreement", "q_margin", "q_values", "features", "reason")}),
        opinion=json.dumps(opinion) if opinion else "(not asked)", portfolio=json.dumps(portfolio),
        memory=memory_text(history, cfg.memory), limits="enforced by the swap risk check")
    try:
        raw = agent.llm.forced_call("decide", "The trading decision for this tick.", DECIDE_SCHEMA,
                                    [HumanMessage(prompt)])
        action = str(raw.get("action", "")).upper()
        if action not in ("BUY", "SELL", "HOLD"):
            raise ValueError(f"action {action!r}")
        frac = min(1.0, max(0.0, float(raw.get("size_fraction", 1.0) or 1.0)))
        return action, frac, str(raw.get("reason", ""))[:300] or rl_reason, "llm"
    except Exception as exc:  # noqa: BLE001 - any model failure falls back to the policy
        agent.tools.notify and agent.tools.notify(f"decision model failed ({exc}); following the RL policy")
        return rl, 1.0, rl_reason, "rl"


def run_agent(cfg: RunConfig, emit: Callable[[TradeDecision], None] | None = None, chat=None) -> list[TradeDecision]:
    """Run the loop; returns the decisions (also appended to decisions.jsonl in the run directory)."""
    from trader_core.config import save_config
    from trader_core.runtime import trader_home

    if cfg.execute and cfg.observe:
        raise ConfigError("--execute and --observe exclude each other; pick one")
    mode = "observe" if cfg.observe else "execute" if cfg.execute else "paper"
    out = Path(cfg.out) if cfg.out else trader_home() / "runs" / time.strftime("agent-%Y%m%d-%H%M%S")
    save_config(cfg, out)
    agent = build_agent(cfg, confirm=(lambda p: True) if cfg.execute else None, chat=chat)
    tools = agent.tools
    if mode == "execute":
        tools.chain  # noqa: B018 - raises ChainUnavailable saying how to start the chain
    paper = None
    history: list[TradeDecision] = []
    log = (out / "decisions.jsonl").open("a")
    try:
        for tick in range(cfg.iterations):
            if kill_switch_on():
                tools.notify and tools.notify("kill switch is on ($TRADER_HOME/KILL or TRADER_KILL=1): stopping")
                break
            up = tools.chain_up()
            price = float(tools.call("get_price").result["price"]) if up else None
            portfolio = tools.call("get_portfolio").result if up else None
            sig = tools.call("get_rl_signal")
            if not sig.ok:
                raise TraderError(f"RL signal failed: {sig.error}")
            signal = sig.result
            price = price or float(signal["price"])
            if paper is None:  # paper trades start from the real wallet (or 1 ETH + its value in USDC)
                wallet = portfolio or {}
                paper = {"eth": float(wallet.get("eth", 1.0)), "usdc": float(wallet.get("usdc", price))}
            opinion = tools.call("ask_trader_model").result if cfg.ask_model else None
            if history and history[-1].pnl_usd is None:
                prev = history[-1]
                sign = {"BUY": 1, "SELL": -1, "HOLD": 0}[prev.action]
                prev.pnl_usd = round(sign * prev.size_eth * (price - prev.price), 4)
            action, frac, reason, by = decide(agent, signal, opinion, {"price": price}, portfolio, history, cfg)
            d = TradeDecision(tick=tick, timestamp=int(time.time()), price=price, action=action,
                              size_eth=round(cfg.trade_eth * frac, 6) if action != "HOLD" else 0.0, reason=reason,
                              rl_action=signal["action"], rl_agreement=float(signal.get("agreement", 0)),
                              model_action=(opinion or {}).get("action"), decided_by=by, mode=mode)
            if action != "HOLD" and mode != "observe":
                _act(tools, d, paper, up)
            history.append(d)
            log.write(d.model_dump_json() + "\n")
            log.flush()
            if emit:
                emit(d)
            if tick + 1 < cfg.iterations and cfg.interval_s:
                time.sleep(cfg.interval_s)
    finally:
        log.close()
    return history


def _journal_paper(tools, d: TradeDecision, trade: dict, got: float, chain_up: bool) -> None:
    """Paper trades go to the same SQLite journal as real ones, with status `paper` (never `confirmed`, so
    they count neither as swaps nor toward the daily-loss kill switch)."""
    import uuid

    from onchain import Journal

    journal = Journal()
    try:
        asset_in = trade["asset"]
        journal.insert({
            "id": f"paper-{uuid.uuid4().hex[:12]}", "chain_id": tools.chain.chain_id if chain_up else None,
            "side": trade["side"], "asset_in": asset_in, "asset_out": "ETH" if asset_in == "USDC" else "USDC",
            "amount_in": trade["amount"], "quoted_out": got, "amount_out": got, "spot_price": d.price,
            "status": "paper", "reason": d.reason[:200],
        })
    finally:
        journal.close()


def _act(tools, d: TradeDecision, paper: dict, chain_up: bool) -> None:
    side = "buy" if d.action == "BUY" else "sell"
    trade = {"side": side, "amount": d.size_eth * d.price, "asset": "USDC"} if side == "buy" else \
        {"side": side, "amount": d.size_eth, "asset": "ETH"}
    if d.mode == "paper":
        if chain_up:
            q = tools.call("get_quote", trade)
            if not q.ok:
                d.status, d.detail = "failed", q.error
                return
            got = float(q.result["amount_out"])
        else:  # no chain: fill at the bar price less the 0.3% pool fee
            got = trade["amount"] * (1 / d.price if side == "buy" else d.price) * 0.997
        if side == "sell" and paper["eth"] < d.size_eth or side == "buy" and paper["usdc"] < trade["amount"]:
            d.status, d.detail = "refused", "paper balance too small"
            return
        if side == "buy":
            paper["usdc"] -= trade["amount"]
            paper["eth"] += got
        else:
            paper["eth"] -= d.size_eth
            paper["usdc"] += got
        d.status = "paper"
        d.detail = f"paper fill: {got:.6f} out; paper wallet {paper['eth']:.4f} ETH, {paper['usdc']:.2f} USDC"
        _journal_paper(tools, d, trade, got, chain_up)
        return
    proposal = tools.call("propose_swap", trade)
    if not proposal.ok or not risk_ok(proposal.result):
        d.status = "refused"
        d.detail = proposal.error or risk_reason(proposal.result)
        return
    receipt = tools.call("execute_swap", {"proposal_id": str(proposal.result["id"])})
    if receipt.ok:
        d.status, d.tx_hash = receipt.result.get("status", "confirmed"), receipt.result.get("tx_hash")
    else:
        d.status, d.detail = "failed", receipt.error
