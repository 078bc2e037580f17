"""The crash-safe trade journal: SQLite (WAL) under trader_home().

Every proposal is written when it is made. Execution claims the row (`proposed` -> `pending`) and writes each
transaction's hash (the USDC approval's too; known before sending because we sign locally) *before* it
leaves; the receipt settles the row after. If the process or the node dies in between, `onchain.execution.reconcile`
settles the row against the node that saw it. Rows belong to a node identity (chain id + genesis hash + mode),
never to a chain id alone.

Statuses: proposed, refused, dry-run, declined, expired, pending, confirmed, reverted, failed, dropped,
orphaned (and `paper` for the agent's paper trades). `cancelled` is the old name of `declined`.

The journal only stores; it imports nothing else from onchain.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from trader_core.errors import StorageError
from trader_core.paths import ensure_dir, os_reason, trader_home

COLUMNS = {  # name -> SQL type; new columns are added to older journals on open
    "id": "TEXT PRIMARY KEY", "created_at": "REAL NOT NULL", "updated_at": "REAL NOT NULL",
    "chain_id": "INTEGER", "account": "TEXT", "venue": "TEXT", "side": "TEXT", "asset_in": "TEXT",
    "asset_out": "TEXT", "amount_in": "REAL", "quoted_out": "REAL", "min_out": "REAL", "amount_out": "REAL",
    "spot_price": "REAL", "price": "REAL", "notional_usd": "REAL", "status": "TEXT NOT NULL", "tx_hash": "TEXT",
    "gas_used": "INTEGER", "gas_cost_eth": "REAL", "realised_loss_usd": "REAL", "block": "INTEGER",
    "reason": "TEXT",
    # added for node identity, nonces, approvals and expiry (older journals get them on open)
    "node_id": "TEXT", "node_instance": "TEXT", "nonce": "INTEGER", "approve_tx_hash": "TEXT",
    "deadline": "INTEGER",
    # execution quality of a fill (quote vs executed price, costs in USD); summarised by `trader trades --stats`
    "quote_price": "REAL", "executed_price": "REAL", "slippage_bps": "REAL", "fee_usd": "REAL",
    "impact_usd": "REAL", "gas_usd": "REAL",
}
CORE = ("id", "created_at", "updated_at", "status")  # a `trades` table without these is not ours
OPEN_STATUSES = ("pending",)
SETTLED_ON_CHAIN = ("confirmed", "reverted")
DECLINED = "declined"


def journal_path() -> Path:
    return trader_home() / "journal.sqlite"


_OPEN: dict[Path, "Journal"] = {}


def default_journal() -> "Journal":
    """The journal under the current trader_home(), opened once per process (API calls that pass none)."""
    path = journal_path()
    if path not in _OPEN or not path.exists():
        _OPEN[path] = Journal(path)
    return _OPEN[path]


class JournalError(StorageError):
    """The journal file cannot be used (not a database, damaged, another schema, read-only, disk full)."""


class Journal:
    """One SQLite file; safe to open from several processes (WAL, short transactions).

    `readonly=True` only reads (listing trades on a read-only TRADER_HOME works too) and changes nothing.
    """

    def __init__(self, path: str | Path | None = None, readonly: bool = False):
        self.path = Path(path) if path else journal_path()
        self.readonly = readonly
        if not readonly:
            ensure_dir(self.path.parent)
        with self._errors("open"):
            self.db = self._connect()
        try:
            with self._errors("open"):
                self.db.row_factory = sqlite3.Row
                if readonly:
                    self._check_schema()
                else:
                    self.db.execute("PRAGMA journal_mode=WAL")
                    self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
                    self._migrate()
        except BaseException:
            self.db.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        kw = {"timeout": 30.0, "isolation_level": None, "check_same_thread": False}
        if not self.readonly:
            return sqlite3.connect(self.path, **kw)
        uri = self.path.resolve().as_uri()
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, **kw)
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1")
            return db
        except sqlite3.OperationalError:  # a WAL journal in a read-only folder: read the file as it is
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, **kw)

    def _check_schema(self) -> None:
        have = {r[1] for r in self.db.execute("PRAGMA table_info(trades)")}
        if not set(CORE) <= have:
            raise sqlite3.DatabaseError(f"its `trades` table lacks {', '.join(sorted(set(CORE) - have))} "
                                        "(not a trade journal of this toolkit)")

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """sqlite3 errors -> one JournalError line naming the file and what to do; the file is left as is."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            if "not a database" in text or "malformed" in text:
                hint = (f"it is not a trade journal or is damaged; it was left untouched: move it aside "
                        f"(mv {self.path} {self.path}.bad) and run again")
            elif "readonly" in text or "read-only" in text or not os.access(self.path.parent, os.W_OK):
                hint = "the file or its folder is read-only; point TRADER_HOME at a writable folder"
            elif "disk is full" in text or "disk I/O" in text:
                hint = "the disk is full or failing; free some space and run again"
            elif "locked" in text:
                hint = "another process holds it locked; try again"
            else:
                hint = "run again; if it persists, move the file aside"
            raise JournalError(f"cannot {action} the trade journal {self.path}: {text}; {hint}") from None
        except OSError as exc:
            raise JournalError(f"cannot {action} the trade journal {self.path}: {os_reason(exc)}") from None

    def _migrate(self) -> None:
        have = {r[1] for r in self.db.execute("PRAGMA table_info(trades)")}
        if have and not set(CORE) <= have:
            raise sqlite3.DatabaseError(f"its `trades` table lacks {', '.join(sorted(set(CORE) - have))} "
                                        "(not a trade journal of this toolkit)")
        if not have:
            cols = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
            self.db.execute(f"CREATE TABLE IF NOT EXISTS trades ({cols})")
        for name, kind in COLUMNS.items():
            if have and name not in have:
                self.db.execute(f"ALTER TABLE trades ADD COLUMN {name} {kind.replace(' PRIMARY KEY', '')}")
        self.db.execute("CREATE INDEX IF NOT EXISTS trades_status ON trades(status)")
        self.db.execute("CREATE INDEX IF NOT EXISTS trades_created ON trades(created_at)")
        try:  # one row per transaction: a second row can never claim the same hash
            self.db.execute("CREATE UNIQUE INDEX IF NOT EXISTS trades_tx ON trades(tx_hash) WHERE tx_hash IS NOT NULL")
        except sqlite3.IntegrityError:
            pass  # a journal written before this index that already holds duplicates: keep reading it

    def close(self) -> None:
        self.db.close()

    # --- writes -------------------------------------------------------------------------------------------

    def insert(self, row: dict[str, Any]) -> None:
        now = time.time()
        row = {"created_at": now, "updated_at": now, **row}
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        # an upsert on the id only: a second row claiming a tx hash must fail, never replace the first row
        sets = ", ".join(f"{k} = excluded.{k}" for k in row if k not in ("id", "created_at"))
        with self._errors("write"):
            self.db.execute(f"INSERT INTO trades ({cols}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {sets}",
                            list(row.values()))

    def update(self, trade_id: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._errors("write"):
            self.db.execute(f"UPDATE trades SET {sets} WHERE id = ?", [*fields.values(), trade_id])

    def transition(self, trade_id: str, expected: str | tuple[str, ...], **fields: Any) -> bool:
        """Update only if the row's status is `expected` (atomic compare-and-set); True if it was."""
        expected = (expected,) if isinstance(expected, str) else expected
        fields["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        marks = ", ".join("?" for _ in expected)
        with self._errors("write"):
            cur = self.db.execute(f"UPDATE trades SET {sets} WHERE id = ? AND status IN ({marks})",
                                  [*fields.values(), trade_id, *expected])
        return cur.rowcount == 1

    def record_proposal(self, proposal, status: str = "proposed", reason: str | None = None,
                        node_id: str | None = None) -> None:
        q = proposal.quote
        self.insert({
            "id": proposal.id, "chain_id": proposal.chain_id, "account": proposal.account, "venue": q.venue,
            "side": q.side, "asset_in": q.asset_in, "asset_out": q.asset_out, "amount_in": q.amount_in,
            "quoted_out": q.amount_out, "min_out": proposal.min_amount_out, "spot_price": q.spot_price,
            "notional_usd": proposal.notional_usd, "status": status, "reason": reason,
            "node_id": node_id, "deadline": proposal.deadline,
        })

    def decline(self, trade_id: str, reason: str = "declined by the user") -> bool:
        """A proposal the user said no to (or never answered): `declined`, never left `proposed`."""
        return self.transition(trade_id, "proposed", status=DECLINED, reason=reason)

    def expire_stale(self, now: float | None = None, node_id: str | None = None,
                     node_now: float | None = None) -> int:
        """Proposals whose router deadline has passed can never execute: `expired`. Returns how many.
        A deadline is on its chain's clock: rows of `node_id` are judged on `node_now` (that node's clock, which a
        replica with baked history keeps years behind the wall clock), the others on `now` (the wall clock)."""
        now = time.time() if now is None else now
        node_now = now if node_now is None else node_now
        with self._errors("write"):
            cur = self.db.execute("UPDATE trades SET status = 'expired', updated_at = ?, reason = COALESCE(reason, "
                                  "'never executed; its deadline passed') WHERE status = 'proposed' AND "
                                  "deadline IS NOT NULL AND deadline < (CASE WHEN node_id IS ? THEN ? ELSE ? END)",
                                  (now, node_id, node_now, now))
        return cur.rowcount

    # --- reads --------------------------------------------------------------------------------------------

    def get(self, trade_id: str) -> dict[str, Any] | None:
        with self._errors("read"):
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
        with self._errors("read"):
            return [dict(r) for r in self.db.execute(sql, args)]

    def rows_to_reconcile(self, chain_id: int) -> list[dict[str, Any]]:
        """Open rows of this chain id (the caller matches the node identity)."""
        with self._errors("read"):
            rows = self.db.execute("SELECT * FROM trades WHERE status = 'pending' AND chain_id = ? "
                                   "ORDER BY created_at", (chain_id,))
            return [dict(r) for r in rows]

    def rows_on_chain(self, node_id: str, not_instance: str) -> list[dict[str, Any]]:
        """Rows settled on this node identity by another run of the node (to check after a restart)."""
        with self._errors("read"):
            rows = self.db.execute("SELECT * FROM trades WHERE status IN ('confirmed', 'reverted') AND node_id = ? "
                                   "AND node_instance IS NOT NULL AND node_instance != ?", (node_id, not_instance))
            return [dict(r) for r in rows]

    def flows_today(self, account: str, node_id: str) -> list[dict[str, Any]]:
        """Today's (UTC) confirmed and pending swaps of one account on one node: what the kill switch marks
        to market. One row per transaction (tx hashes are unique), so nothing is counted twice."""
        midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        with self._errors("read"):
            rows = self.db.execute(
                "SELECT id, status, side, amount_in, amount_out, quoted_out, min_out, gas_cost_eth FROM trades "
                "WHERE status IN ('confirmed', 'pending') AND account = ? AND node_id = ? AND created_at >= ?",
                (account, node_id, midnight))
            return [dict(r) for r in rows]
