"""Execution quality of journalled fills: realised slippage (quote vs executed price), fees, price impact, gas.

Rows written with the execution-quality columns (paper and `--learn` fills) carry them directly; older swap rows
are read from what they have: the quoted vs received amount gives the slippage, `gas_cost_eth` x price the gas.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel

FILLED = ("confirmed", "paper")


class ExecutionStats(BaseModel):
    fills: int
    by_status: dict[str, int]
    slippage_bps_mean: float | None
    slippage_bps_median: float | None
    slippage_bps_p95: float | None
    fee_usd: float
    impact_usd: float
    gas_usd: float
    notional_usd: float

    @property
    def cost_bps(self) -> float | None:
        total = self.fee_usd + self.impact_usd + self.gas_usd
        return None if self.notional_usd <= 0 else total / self.notional_usd * 1e4


def row_slippage_bps(row: dict[str, Any]) -> float | None:
    """Adverse slippage of one fill in bps: the stored value, else quoted vs received amount."""
    if row.get("slippage_bps") is not None:
        return float(row["slippage_bps"])
    quoted, got = row.get("quoted_out"), row.get("amount_out")
    if quoted and got is not None and quoted > 0:
        return (quoted - got) / quoted * 1e4
    return None


def summarise(rows: list[dict[str, Any]]) -> ExecutionStats:
    filled = [r for r in rows if r.get("status") in FILLED]
    slips = np.array([s for s in map(row_slippage_bps, filled) if s is not None], dtype=float)
    by_status: dict[str, int] = {}
    fee = impact = gas = notional = 0.0
    for r in filled:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
        price = r.get("quote_price") or r.get("spot_price") or r.get("price") or 0.0
        fee += r.get("fee_usd") or 0.0
        impact += r.get("impact_usd") or 0.0
        gas += r["gas_usd"] if r.get("gas_usd") is not None else (r.get("gas_cost_eth") or 0.0) * price
        amount = r.get("amount_in") or 0.0
        notional += r.get("notional_usd") or (amount if r.get("asset_in") == "USDC" else amount * price)
    pick = (lambda f: float(f(slips))) if slips.size else (lambda f: None)
    return ExecutionStats(fills=len(filled), by_status=by_status, slippage_bps_mean=pick(np.mean),
                          slippage_bps_median=pick(np.median), slippage_bps_p95=pick(lambda a: np.percentile(a, 95)),
                          fee_usd=fee, impact_usd=impact, gas_usd=gas, notional_usd=notional)


def format_stats(s: ExecutionStats) -> str:
    if not s.fills:
        return "no fills journalled yet (paper or confirmed)"
    slip = ("n/a" if s.slippage_bps_mean is None else
            f"mean {s.slippage_bps_mean:.1f}, median {s.slippage_bps_median:.1f}, p95 {s.slippage_bps_p95:.1f} bps")
    cost = "" if s.cost_bps is None else f" = {s.cost_bps:.1f} bps of {s.notional_usd:,.2f} USD traded"
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(s.by_status.items()))
    return (f"{s.fills} fills ({kinds}); slippage vs quote: {slip}; costs: fee {s.fee_usd:,.2f} + impact "
            f"{s.impact_usd:,.2f} + gas {s.gas_usd:,.2f} USD{cost}")
