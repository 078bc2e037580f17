"""The promotion gate: a candidate replaces the serving policy only if, on the most recent held-out window, it
is not worse than the incumbent by more than a margin (Sharpe and max drawdown, net of fees, price impact and
gas, in the policy's own env) and it passes the safety switch (finite Q-values on every state of the window, only
valid actions, no churning) and the trust region: on the states it visits it decides as the incumbent would on
most of them. A short window cannot vouch for a policy that acts differently almost everywhere: measured, a
learner trained on sign-flipped rewards disagrees with the DQN default on 85-99% of states and out-scored it on
one 72-bar window by luck (Sharpe 3.05 vs 2.92), while a learner on true rewards agrees on 78-99%. The learner never trains on that window's live transitions (see `ready_ids`).
"""

from __future__ import annotations

import math
import time

import numpy as np
from pydantic import BaseModel, Field


class GateConfig(BaseModel):
    window_bars: int = Field(72, ge=8, le=10_000, description="bars in the held-out window the gate replays")
    sharpe_margin: float = Field(0.5, ge=0, description="candidate Sharpe may trail the incumbent's by this much")
    drawdown_margin: float = Field(0.01, ge=0, le=1, description="candidate max drawdown may exceed the "
                                   "incumbent's by this much (fraction of equity)")
    max_trade_share: float = Field(0.25, gt=0, le=1, description="safety: at most this share of bars may trade")
    max_disagreement: float = Field(0.5, ge=0, le=1, description="trust region: at most this share of the "
                                    "window's states may get another action than the incumbent would choose")


class SideMetrics(BaseModel):
    sharpe: float
    max_drawdown: float
    total_return: float
    n_trades: int
    costs_usd: float
    bars: int


class GateDecision(BaseModel):
    time: float
    step: int
    candidate: str
    promoted: bool
    reasons: list[str]
    window: dict[str, int]
    candidate_metrics: SideMetrics | None = None
    incumbent_metrics: SideMetrics | None = None
    anchor_metrics: SideMetrics | None = None  # the policy the run started with, when another one serves
    disagreement: float | None = None  # share of the candidate's states where the incumbent would act otherwise
    kind: str = "gate"


def _side(result, interval_s: int) -> SideMetrics:
    from rl.metrics import compute_metrics

    m = compute_metrics(result, interval_s)
    return SideMetrics(sharpe=m["sharpe"], max_drawdown=m["max_drawdown"], total_return=m["total_return"],
                       n_trades=m["n_trades"], costs_usd=m["fees_paid"] + m["impact_paid"] + m["gas_paid"],
                       bars=m["n_bars"])


def judge(cand: SideMetrics, inc: SideMetrics, safety: list[str], cfg: GateConfig,
          disagreement: float = 0.0) -> list[str]:
    """Why the candidate may not be promoted (empty: promote). Pure, so the rule is tested by hand."""
    reasons = list(safety)
    if disagreement > cfg.max_disagreement:
        reasons.append(f"trust region: acts otherwise than the incumbent on {disagreement:.0%} of the window's "
                       f"states (limit {cfg.max_disagreement:.0%}); {cand.bars} bars cannot vouch for a new policy")
    if not math.isfinite(cand.sharpe) or cand.sharpe < inc.sharpe - cfg.sharpe_margin:
        reasons.append(f"Sharpe {cand.sharpe:.2f} trails the incumbent's {inc.sharpe:.2f} by more than "
                       f"{cfg.sharpe_margin:g}")
    if not math.isfinite(cand.max_drawdown) or cand.max_drawdown > inc.max_drawdown + cfg.drawdown_margin:
        reasons.append(f"max drawdown {cand.max_drawdown:.2%} exceeds the incumbent's {inc.max_drawdown:.2%} by "
                       f"more than {cfg.drawdown_margin:.2%}")
    if cand.bars and cand.n_trades > cfg.max_trade_share * cand.bars:
        reasons.append(f"churn: {cand.n_trades} trades in {cand.bars} bars (safety limit "
                       f"{cfg.max_trade_share:.0%} of bars)")
    return reasons


def run_gate(candidate, incumbent, candles, cfg: GateConfig, step: int = 0, name: str = "",
             anchor=None) -> GateDecision:
    """Backtest both policies (rl `Policy` objects) on the last `window_bars` bars of `candles`; decide.

    `anchor`: the policy the run started with, when a promoted candidate serves. The candidate must then pass
    against it too; otherwise a chain of promotions, each within the margin of the last, could drift far below
    where the run began (measured: 22 promotions in 400 ticks, ending 3.7 points of return below the start)."""
    from rl.training.evaluate import run_backtest

    feats = incumbent.features_for(candles)
    stop = len(candles)
    start = max(0, stop - cfg.window_bars - 1)
    window = {"start_time": int(candles.timestamps[start]), "end_time": int(candles.timestamps[stop - 1]),
              "bars": stop - start}
    safety: list[str] = []
    n_actions = len(incumbent.action_names)
    differs: list[bool] = []

    def guarded(obs, env):  # the safety switch on the candidate: its raw Q-values, checked on every state
        d = candidate.decide(obs)  # the candidate's own decision rule (an ensemble votes)
        if not np.isfinite(d.q_mean).all():
            if "non-finite Q-values" not in safety:
                safety.append("non-finite Q-values")
            return 0
        a = int(d.action)
        if not 0 <= a < n_actions:
            safety.append(f"action {a} outside the action set")
            return 0
        differs.append(a != incumbent.act(obs))
        return a

    try:
        cand_res = run_backtest(feats, incumbent.config.env, start, stop, guarded)
        inc_res = run_backtest(feats, incumbent.config.env, start, stop, incumbent.action_fn())
    except Exception as exc:  # a window the env cannot trade (too short, a gap) is no evidence either way
        return GateDecision(time=time.time(), step=step, candidate=name, promoted=False,
                            reasons=[f"window unusable: {exc}"], window=window)
    interval = int(candles.interval_s or 3600)
    cand, inc = _side(cand_res, interval), _side(inc_res, interval)
    disagreement = float(np.mean(differs)) if differs else 0.0
    reasons = judge(cand, inc, safety, cfg, disagreement)
    anchored = None
    if anchor is not None and anchor is not incumbent:
        anchored = _side(run_backtest(feats, incumbent.config.env, start, stop, anchor.action_fn()), interval)
        reasons += [f"vs the starting policy: {r}" for r in judge(cand, anchored, [], cfg)]
    return GateDecision(time=time.time(), step=step, candidate=name, promoted=not reasons, reasons=reasons,
                        window=window, candidate_metrics=cand, incumbent_metrics=inc, anchor_metrics=anchored,
                        disagreement=disagreement)
