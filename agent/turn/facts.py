"""Tool results as short sentences: what a small model paraphrases, and the answer when no model does.

Every sentence is made from a tool's typed result (`ToolCall.value`), so its numbers are the tools' own.
"""

from __future__ import annotations

import json
import re

from agent.market import PolicyView, TraderOpinion, utc, vote_words, wallet_words
from agent.turn.tools import ToolCall
from onchain.models import Portfolio, PriceQuote, Quote, SwapProposal, SwapReceipt

CAPABILITIES = "I can give prices, quotes, the RL signal, your portfolio, swap proposals and your trades."


def fact(c: ToolCall) -> str:
    """One sentence for one tool call (its error, if it failed)."""
    v = c.value
    if not c.ok:
        return f"{c.name} failed: {c.error}"
    if isinstance(v, PriceQuote):
        return f"ETH is {v.price:.2f} USDC on {v.venue}."
    if isinstance(v, Quote):
        return (f"{v.amount_in:g} {v.asset_in} -> {v.amount_out:.6g} {v.asset_out} on {v.venue} "
                f"(impact {v.price_impact_bps:.1f} bps).")
    if isinstance(v, PolicyView):
        note = f"; it holds because {v.reason}" if v.reason else ""
        return (f"The RL policy says {v.action} ({vote_words(v)}; wallet {wallet_words(v)}) for the bar of "
                f"{utc(v.bar_time)} at {v.price:,.2f}{note}.")
    if isinstance(v, TraderOpinion):
        return f"The trader model ({v.model}) says {v.action}."
    if isinstance(v, Portfolio):
        value = f", worth {v.value_usd:,.2f} USD" if v.value_usd is not None else ""
        return f"Wallet: {v.eth:.4f} ETH, {v.weth:.4f} WETH, {v.usdc:.2f} USDC{value}."
    if isinstance(v, SwapProposal):
        q = v.quote
        verdict = "passes the risk check" if v.risk.ok else f"is refused by the risk check: {'; '.join(v.risk.reasons)}"
        return (f"Proposal {v.id}: {q.side} {q.amount_in:g} {q.asset_in} for at least {v.min_amount_out:.6g} "
                f"{q.asset_out} on {q.venue}; it {verdict}.")
    if isinstance(v, SwapReceipt):
        return f"Swap {v.status}: tx {v.tx_hash}."
    if c.name == "get_trades" and isinstance(v, list):
        return f"{len(v)} trade(s) in the journal."
    return f"{c.name}: {c.content()[:300]}"


def summary_answer(calls: list[ToolCall]) -> str:
    """A plain answer straight from the tool results."""
    return " ".join(fact(c) for c in calls) if calls else CAPABILITIES


def results_text(calls: list[ToolCall], details: bool = True, safety: str | None = None) -> str:
    """Facts as short sentences (small models paraphrase those well), then the raw JSON for capable models."""
    lines = [f"- {safety}"] if safety else []
    lines += [f"- {fact(c)}" for c in calls]
    if details:
        lines += [f"- {c.name}({json.dumps(c.args)}) returned: {c.content()[:600]}" for c in calls]
    if any(c.name == "propose_swap" and c.ok for c in calls) and not any(c.name == "execute_swap" and c.ok
                                                                         for c in calls):
        lines.append("- note: the proposal was NOT executed; it needs the user's confirmation")
    return "\n".join(lines) if lines else "(no tool was needed for this message)"


def key_facts(calls: list[ToolCall]) -> list[str]:
    """What a complete answer must mention: the headline figure of each result, the names of violated limits."""
    out = []
    for c in calls:
        v = c.value
        if not c.ok:
            continue
        if isinstance(v, SwapProposal):
            out.append(v.id)
            if not v.risk.ok:
                out += re.findall(r"\b(max_\w+|daily_loss_limit_usd)\b", "; ".join(v.risk.reasons))
        elif isinstance(v, PriceQuote):
            out.append(str(int(v.price)))
        elif isinstance(v, Quote):
            out.append(str(int(v.amount_out)))
        elif isinstance(v, PolicyView):
            out.append(v.action)
        elif isinstance(v, Portfolio):
            out.append(str(int(v.eth)))
        elif isinstance(v, SwapReceipt):
            out.append(str(v.tx_hash or "")[:10])
    return out
