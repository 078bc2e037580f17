"""What one tick of `trader run` decided (`TradeDecision`) and how a decision becomes a fill: a paper trade at the
pool's quote (live) or at the replayed bar's close less the pool fee, or a guarded swap on the local chain. Each
fill carries its execution quality (quote vs executed price, fee, impact, gas) into the journal, where
`trader trades --stats` and the online learner read it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from agent.turn.safety import TradeGate
from onchain.models import Quote, SwapProposal, SwapReceipt

Action = Literal["BUY", "SELL", "HOLD"]
PAPER_FEE = 0.003  # a replayed fill pays the V2 pool's fee, as the policy's training env does


class TradeDecision(BaseModel):
    """One tick's decision and what came of it."""

    tick: int
    timestamp: int
    bar_time: int = Field(description="open time of the latest bar the decision saw")
    price: float
    action: Action
    size_eth: float
    reason: str
    rl_action: Action
    rl_agreement: float
    model_action: str | None = None
    decided_by: Literal["llm", "rl", "feed"]
    mode: Literal["paper", "execute", "observe"]
    status: str = "none"  # none | stale | paper | confirmed | refused | failed
    position: float = Field(description="fraction of the traded wallet in ETH when deciding")
    tx_hash: str | None = None
    detail: str | None = None
    pnl_usd: float | None = Field(None, description="mark-to-market PnL of this decision at the next tick")
    equity_usd: float | None = Field(None, description="value of the traded wallet after this tick, USD")



def run_key(out: Path) -> str:
    import hashlib

    return hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:10]


def _journal_paper(tools, d: TradeDecision, trade: dict, got: float, live: bool, fill, key: str | None) -> None:
    """Paper trades go to the same SQLite journal as real ones, with status `paper` (never `confirmed`, so
    they count neither as swaps nor toward the daily-loss kill switch), with the fill's execution quality."""
    import uuid

    from onchain.api import Journal

    journal = Journal()
    try:
        asset_in = trade["asset"]
        journal.insert({
            "id": key or f"paper-{uuid.uuid4().hex[:12]}", "chain_id": tools.chain.chain_id if live else None,
            "side": trade["side"], "asset_in": asset_in, "asset_out": "ETH" if asset_in == "USDC" else "USDC",
            "amount_in": trade["amount"], "quoted_out": got, "amount_out": got, "spot_price": d.price,
            "status": "paper", "reason": d.reason[:200], **_quality_columns(fill),
        })
    finally:
        journal.close()


def _journal_quality(trade_id: str, fill) -> None:
    """A confirmed swap's journal row gets the same execution-quality columns as a paper fill, so `trader trades
    --stats` counts its fee and price impact, not only its gas."""
    from onchain.api import Journal

    journal = Journal()
    try:
        journal.update(trade_id, **_quality_columns(fill))
    finally:
        journal.close()


def _quality_columns(fill) -> dict:
    return {"quote_price": fill.quote_price, "executed_price": fill.executed_price,
            "slippage_bps": round(fill.slippage_bps, 4), "fee_usd": fill.fee_usd, "impact_usd": fill.impact_usd,
            "gas_usd": fill.gas_usd}


def act(tools, d: TradeDecision, paper: dict, live: bool, key: str | None = None):
    """Trade; the realised `Fill` (quote vs executed price, fee, impact, gas), or None when nothing traded."""
    from agent.loop.online import paper_fill

    side = "buy" if d.action == "BUY" else "sell"
    trade = {"side": side, "amount": d.size_eth * d.price, "asset": "USDC"} if side == "buy" else \
        {"side": side, "amount": d.size_eth, "asset": "ETH"}
    if d.mode == "paper":
        if side == "sell" and paper["eth"] < d.size_eth or side == "buy" and paper["usdc"] < trade["amount"]:
            d.status, d.detail = "refused", "paper balance too small"
            return None
        quote_price = d.price
        if live:  # the pool's own quote for this size
            q = tools.call("get_quote", trade)
            if not isinstance(q.value, Quote):
                d.status, d.detail = "failed", q.error
                return None
            got, quote_price = q.value.amount_out, q.value.spot_price
        else:  # a replayed bar: fill at its close less the pool fee
            got = trade["amount"] * (1 / d.price if side == "buy" else d.price) * (1 - PAPER_FEE)
        if side == "buy":
            paper["usdc"] -= trade["amount"]
            paper["eth"] += got
        else:
            paper["eth"] -= d.size_eth
            paper["usdc"] += got
        d.status = "paper"
        d.detail = f"paper fill: {got:.6f} out; paper wallet {paper['eth']:.4f} ETH, {paper['usdc']:.2f} USDC"
        fill = paper_fill(side, quote_price, trade["amount"], got, PAPER_FEE)
        _journal_paper(tools, d, trade, got, live, fill, key)
        return fill
    tools.begin_turn(TradeGate.for_autonomous_run())  # the user opted in with --execute; risk limits still apply
    proposal = tools.call("propose_swap", trade)
    if not isinstance(proposal.value, SwapProposal) or not proposal.value.risk.ok:
        d.status = "refused"
        d.detail = proposal.error or "; ".join(proposal.value.risk.reasons)
        return None
    receipt = tools.call("execute_swap", {"proposal_id": proposal.value.id})
    if isinstance(receipt.value, SwapReceipt):
        r = receipt.value
        d.status, d.tx_hash = r.status, r.tx_hash
        if r.status == "confirmed":
            q = proposal.value.quote
            fill = paper_fill(side, q.spot_price, r.amount_in, r.amount_out, q.fee_bps / 1e4,
                              (r.gas_cost_eth or 0.0) * q.spot_price)
            _journal_quality(proposal.value.id, fill)
            return fill
    else:
        d.status, d.detail = "failed", receipt.error
    return None
