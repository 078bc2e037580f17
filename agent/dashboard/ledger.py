"""The journal as the dashboard shows it: one typed row per swap, and the wallet's equity marked to market over time.

The equity curve replays the journal's settled swaps of the trading account *backward* from the balances the chain
reports now: after each fill the wallet held what it holds now minus every later fill. Each fill gives two points at
the pool's mid price of that moment, just before and just after it, so the step between them is what the trade cost
(LP fee, price impact, slippage vs quote, gas). Deposits (`trader chain fund`) are not in the journal: before the
first fill the curve shows the balances that fills explain, not a history of funding.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from onchain.execution.quality import format_stats, row_slippage_bps, summarise

# what reconciliation has to say about each journal status (onchain/execution/journal.py lists them)
SETTLEMENT = {
    "proposed": "not sent", "pending": "open: sent, awaiting its receipt (the next command reconciles it)",
    "confirmed": "settled on chain", "reverted": "settled on chain (reverted)", "failed": "closed before sending",
    "refused": "refused by the risk check", "declined": "declined by the user", "cancelled": "declined by the user",
    "expired": "expired unsent", "dry-run": "dry run", "dropped": "reconciled: the node never mined it",
    "orphaned": "reconciled: lost with a restarted node", "paper": "paper trade (no chain)",
}
GAS_ONLY = ("reverted", "failed")  # a transaction that cost gas but moved no tokens


class JournalRow(BaseModel):
    id: str
    time: float
    side: str | None
    venue: str | None
    amount_in: float | None
    asset_in: str | None
    amount_out: float | None = Field(description="received; the quoted amount (estimated) when nothing settled")
    asset_out: str | None
    estimated: bool = Field(description="amount_out is the quote, not a fill")
    status: str
    settlement: str = Field(description="what reconciliation says about the row")
    tx_hash: str | None
    block: int | None
    price: float | None = Field(description="executed price, USDC per ETH")
    slippage_bps: float | None = Field(description="adverse slippage vs the quote (negative: better than quoted)")
    gas_usd: float | None
    reason: str | None


class FillCost(BaseModel):
    fee_usd: float
    impact_usd: float
    slippage_usd: float
    gas_usd: float

    @property
    def total(self) -> float:
        return self.fee_usd + self.impact_usd + self.slippage_usd + self.gas_usd


class EquityPoint(BaseModel):
    time: float
    equity_usd: float
    costs_usd: float = Field(description="costs paid up to this point (fees, impact, slippage, gas)")
    label: str = ""


class EquityCurve(BaseModel):
    points: list[EquityPoint]
    fills: int
    costs: FillCost
    note: str


def _spot(row: dict[str, Any]) -> float:
    return float(row.get("spot_price") or row.get("quote_price") or row.get("price") or 0.0)


def _usd_per_unit(asset: str | None, spot: float) -> float:
    return 1.0 if asset == "USDC" else spot


def fill_cost(row: dict[str, Any], fee_bps: float) -> FillCost:
    """Costs of one fill in USD at the pool's mid price when it was quoted. Columns written by paper and `--learn`
    fills win; chain swaps are split from what they carry: the LP fee from the venue's fee tier, slippage from
    quoted vs received, the price impact as the rest of the shortfall against the mid price."""
    spot = _spot(row)
    gas = row["gas_usd"] if row.get("gas_usd") is not None else (row.get("gas_cost_eth") or 0.0) * spot
    if row.get("status") in GAS_ONLY or row.get("amount_out") is None:
        return FillCost(fee_usd=0.0, impact_usd=0.0, slippage_usd=0.0, gas_usd=gas)
    unit_in, unit_out = _usd_per_unit(row.get("asset_in"), spot), _usd_per_unit(row.get("asset_out"), spot)
    notional = (row.get("amount_in") or 0.0) * unit_in
    fee = row["fee_usd"] if row.get("fee_usd") is not None else notional * fee_bps / 1e4
    quoted = row.get("quoted_out")
    slippage = (quoted - row["amount_out"]) * unit_out if quoted is not None else 0.0
    shortfall = notional - row["amount_out"] * unit_out
    impact = row["impact_usd"] if row.get("impact_usd") is not None else max(0.0, shortfall - fee - slippage)
    return FillCost(fee_usd=fee, impact_usd=impact, slippage_usd=slippage, gas_usd=gas)


def journal_rows(rows: list[dict[str, Any]], limit: int = 100) -> list[JournalRow]:
    """Newest first, as the journal lists them."""
    out = []
    for r in rows[:limit]:
        settled = r.get("amount_out") is not None
        spot = _spot(r)
        gas = r.get("gas_usd") if r.get("gas_usd") is not None else (
            None if r.get("gas_cost_eth") is None else r["gas_cost_eth"] * spot)
        out.append(JournalRow(
            id=r["id"], time=r["created_at"], side=r.get("side"), venue=r.get("venue"), amount_in=r.get("amount_in"),
            asset_in=r.get("asset_in"), amount_out=r["amount_out"] if settled else r.get("quoted_out"),
            asset_out=r.get("asset_out"), estimated=not settled, status=r["status"],
            settlement=SETTLEMENT.get(r["status"], r["status"]), tx_hash=r.get("tx_hash"), block=r.get("block"),
            price=r.get("executed_price") or r.get("price"),
            slippage_bps=row_slippage_bps(r) if r["status"] in ("confirmed", "paper") else None,
            gas_usd=gas, reason=r.get("reason")))
    return out


def execution_summary(rows: list[dict[str, Any]]) -> str:
    """The one line `trader trades --stats` prints."""
    return format_stats(summarise(rows))


def wallet_rows(rows: list[dict[str, Any]], account: str, node_id: str | None) -> list[dict[str, Any]]:
    """Rows of this account on this node that moved the wallet (fills and gas-only transactions), oldest first."""
    mine = [r for r in rows if (r.get("account") or "").lower() == account.lower()
            and (node_id is None or r.get("node_id") in (None, node_id))
            and (r["status"] == "confirmed" or (r["status"] in GAS_ONLY and r.get("gas_cost_eth")))]
    return sorted(mine, key=lambda r: r["created_at"])


def equity_curve(rows: list[dict[str, Any]], eth: float, usdc: float, price: float, now: float,
                 fee_bps: dict[str, float]) -> EquityCurve:
    """Equity over time from `rows` (wallet_rows: oldest first) and the balances now (ETH incl. WETH, USDC)."""
    costs = [fill_cost(r, fee_bps.get(r.get("venue") or "", 0.0)) for r in rows]
    total = FillCost(fee_usd=sum(c.fee_usd for c in costs), impact_usd=sum(c.impact_usd for c in costs),
                     slippage_usd=sum(c.slippage_usd for c in costs), gas_usd=sum(c.gas_usd for c in costs))
    cumulative = [sum(c.total for c in costs[: i + 1]) for i in range(len(costs))]
    points = [EquityPoint(time=now, equity_usd=eth * price + usdc, costs_usd=cumulative[-1] if costs else 0.0,
                          label="now")]
    for i in range(len(rows) - 1, -1, -1):  # newest first: undo each fill
        r, spot = rows[i], _spot(rows[i])
        t = float(r.get("updated_at") or r["created_at"])  # settled then, not when it was proposed
        points.append(EquityPoint(time=t, equity_usd=eth * spot + usdc, costs_usd=cumulative[i],
                                  label=f"after {r.get('side') or 'tx'} {r['id'][:8]}"))
        eth += r.get("gas_cost_eth") or 0.0
        if r["status"] == "confirmed":
            if r.get("asset_in") == "ETH":
                eth, usdc = eth + (r.get("amount_in") or 0.0), usdc - (r.get("amount_out") or 0.0)
            else:
                eth, usdc = eth - (r.get("amount_out") or 0.0), usdc + (r.get("amount_in") or 0.0)
        points.append(EquityPoint(time=t - 1e-3, equity_usd=eth * spot + usdc,
                                  costs_usd=cumulative[i - 1] if i else 0.0, label=f"before {r['id'][:8]}"))
    points.reverse()
    note = ("marked to market at the pool's mid price of each fill and now; the step at a fill is its cost; "
            "deposits are not journalled")
    return EquityCurve(points=points, fills=sum(r["status"] == "confirmed" for r in rows), costs=total, note=note)
