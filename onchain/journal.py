"""The crash-safe trade journal: SQLite (WAL) under trader_home().

Every proposal is written when it is made; a swap's row turns `pending` (with its tx hash, known before
sending because we sign locally) *before* the transaction leaves, and is updated after. If the node dies in
between, `reconcile` settles pending rows by tx hash on the next start. Nothing is lost.

Statuses: proposed, refused, dry-run, cancelled, pending, confirmed, reverted, failed, dropped.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trader_core.runtime import trader_home

SCHEMA = """
CREATE TABLE IF NOT EXISTS trades (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    chain_id INTEGER,
    account TEXT,
    venue TEXT,
    side TEXT,
    asset_in TEXT,
    asset_out TEXT,
    amount_in REAL,
    quoted_out REAL,
    min_out REAL,
    amount_out REAL,
    spot_price REAL,
    price REAL,
    notional_usd REAL,
    status TEXT NOT NULL,
    tx_hash TEXT,
    gas_used INTEGER,
    gas_cost_eth REAL,
    realised_loss_usd REAL,
    block INTEGER,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS trades_status ON trades(status);
CREATE INDEX IF NOT EXISTS trades_created ON trades(created_at);
"""
OPEN_STATUSES = ("pending",)


def journal_path() -> Path:
    return trader_home() / "journal.sqlite"


_OPEN: dict[Path, "Journal"] = {}


def default_journal() -> "Journal":
    """The journal under the current trader_home(), opened once per process (API calls that pass none)."""
    path = journal_path()
    if path not in _OPEN or not path.exists():
        _OPEN[path] = Journal(path)
    return _OPEN[path]


class Journal:
    """One SQLite file; safe to open from several processes (WAL, short transactions)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else journal_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # --- writes -------------------------------------------------------------------------------------------

    def insert(self, row: dict[str, Any]) -> None:
        now = time.time()
        row = {"created_at": now, "updated_at": now, **row}
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.db.execute(f"INSERT OR REPLACE INTO trades ({cols}) VALUES ({marks})", list(row.values()))

    def update(self, trade_id: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE trades SET {sets} WHERE id = ?", [*fields.values(), trade_id])

    def record_proposal(self, proposal, status: str = "proposed", reason: str | None = None) -> None:
        q = proposal.quote
        self.insert({
            "id": proposal.id, "chain_id": proposal.chain_id, "account": proposal.account, "venue": q.venue,
            "side": q.side, "asset_in": q.asset_in, "asset_out": q.asset_out, "amount_in": q.amount_in,
            "quoted_out": q.amount_out, "min_out": proposal.min_amount_out, "spot_price": q.spot_price,
            "notional_usd": proposal.notional_usd, "status": status, "reason": reason,
        })

    # --- reads --------------------------------------------------------------------------------------------

    def get(self, trade_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM trades WHERE id = ?", (trade_id,)).fetchone()
        return dict(row) if row else None

    def list_trades(self, limit: int | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        sql, args = "SELECT * FROM trades", []
        if status:
            sql += " WHERE status = ?"
            args.append(status)
        sql += " ORDER BY created_at DESC"
        if limit:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [dict(r) for r in self.db.execute(sql, args)]

    def realised_loss_today(self, chain_id: int | None = None) -> float:
        """Sum of confirmed swaps' realised loss (value given up vs the mid price, plus gas) since 00:00 UTC."""
        midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        sql = "SELECT COALESCE(SUM(realised_loss_usd), 0) FROM trades WHERE status = 'confirmed' AND created_at >= ?"
        args: list[Any] = [midnight]
        if chain_id is not None:
            sql += " AND chain_id = ?"
            args.append(chain_id)
        return float(self.db.execute(sql, args).fetchone()[0])

    # --- recovery -----------------------------------------------------------------------------------------

    def reconcile(self, chain) -> list[dict[str, Any]]:
        """Settle `pending` rows of this chain id by tx hash: confirmed / reverted from the receipt,
        still pending if the node still holds the tx, else `dropped` (the node died before mining it)."""
        from onchain.swap import settle_from_receipt

        settled = []
        rows = self.db.execute("SELECT * FROM trades WHERE status = 'pending' AND chain_id = ?", (chain.chain_id,))
        for row in [dict(r) for r in rows]:
            if not row["tx_hash"]:
                self.update(row["id"], status="failed", reason="interrupted before the transaction was sent")
            else:
                receipt = chain.rpc("eth_getTransactionReceipt", row["tx_hash"])
                if receipt is not None:
                    settle_from_receipt(self, row, receipt)
                elif chain.rpc("eth_getTransactionByHash", row["tx_hash"]) is not None:
                    continue  # still in the node's pool: leave it pending
                else:
                    self.update(row["id"], status="dropped",
                                reason="not on chain after restart (the node stopped before mining it)")
            settled.append(self.get(row["id"]))
        return settled
