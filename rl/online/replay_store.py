"""The learner's replay store: one SQLite file (WAL) that every transition reaches before the next decision.

A live decision is written when it is made (observation, action, the realised fill's costs, the wallet after it)
and completed at the next tick with its reward and next observation, so rows stored == decisions made at every
instant, and a restart finds the wallet and the last tick in the file. Keys are (run id, source, tick): writing
the same tick twice is a no-op, never a duplicate. `history` rows are the policy's own training data (env
rollouts on the train split) mixed in so the learner does not forget. Nothing the learner needs lives only in
memory: its priorities and step count are saved here too.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trader_core.errors import StorageError
from trader_core.paths import ensure_dir, os_reason

SCHEMA = """
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL, source TEXT NOT NULL, tick INTEGER NOT NULL,
    obs BLOB NOT NULL, action INTEGER NOT NULL, reward REAL, next_obs BLOB, done INTEGER NOT NULL DEFAULT 0,
    bar_time INTEGER, price REAL, fill TEXT, wallet_eth REAL, wallet_usdc REAL, created_at REAL NOT NULL,
    usable INTEGER NOT NULL DEFAULT 1, decision TEXT,
    UNIQUE (run_id, source, tick)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS priorities (id INTEGER PRIMARY KEY, priority REAL NOT NULL);
"""


@dataclass(frozen=True)
class Fill:
    """What one executed (or paper) trade cost: quote vs executed price, fee, price impact, gas (USD)."""

    side: str  # buy | sell | none
    quote_price: float  # mid/quoted USDC per ETH before the trade
    executed_price: float  # USDC per ETH actually paid or received
    notional_usd: float
    fee_usd: float = 0.0
    impact_usd: float = 0.0
    gas_usd: float = 0.0

    @property
    def slippage_bps(self) -> float:
        """Adverse difference of executed vs quoted price, in basis points (positive = worse than quoted)."""
        if self.side == "none" or self.quote_price <= 0:
            return 0.0
        sign = 1.0 if self.side == "buy" else -1.0
        return sign * (self.executed_price / self.quote_price - 1.0) * 1e4

    @property
    def cost_usd(self) -> float:
        return self.fee_usd + self.impact_usd + self.gas_usd

    @classmethod
    def none(cls, price: float) -> "Fill":
        return cls("none", price, price, 0.0)


@dataclass(frozen=True)
class LiveDecision:
    """A decision row as a restart reads it back."""

    tick: int
    action: int
    bar_time: int
    price: float
    wallet_eth: float
    wallet_usdc: float
    complete: bool


@dataclass
class Batch:
    ids: np.ndarray
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    dones: np.ndarray


def _blob(x) -> bytes:
    return np.asarray(x, dtype=np.float32).ravel().tobytes()


class ReplayStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        ensure_dir(self.path.parent, "replay store folder")
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            self.db.execute("SELECT count(*) FROM transitions").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"replay store {self.path} is unusable ({exc}); move it aside to start a fresh "
                               "learner, or point --out at another run") from None
        except OSError as exc:
            raise StorageError(f"cannot open replay store {self.path}: {os_reason(exc)}") from None

    def close(self) -> None:
        self.db.close()

    def _write(self, sql: str, args: Iterable = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, tuple(args))
        except sqlite3.OperationalError as exc:
            raise StorageError(f"cannot write replay store {self.path}: {exc}") from None

    # -- live decisions ---------------------------------------------------------------------------------
    def record_decision(self, run_id: str, tick: int, obs, action: int, fill: Fill, bar_time: int, price: float,
                        wallet_eth: float, wallet_usdc: float, usable: bool = True, decision: str | None = None) -> bool:
        """Append the decision of `tick` (True), or nothing if that tick is already stored (False).

        `usable=False`: the policy held before it looked (stale data, look-back not covered), so there is no
        observation to learn from; the row still counts the decision and carries the wallet."""
        cur = self._write(
            "INSERT OR IGNORE INTO transitions (run_id, source, tick, obs, action, fill, bar_time, price, "
            "wallet_eth, wallet_usdc, created_at, usable, decision) VALUES (?, 'live', ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?)",
            (run_id, tick, _blob(obs), int(action), json.dumps(asdict(fill)), bar_time, price, wallet_eth,
             wallet_usdc, time.time(), int(usable), decision))
        return cur.rowcount == 1

    def complete(self, run_id: str, tick: int, reward: float, next_obs, done: bool = False) -> bool:
        """Give the decision of `tick` its realised reward and next observation (once)."""
        cur = self._write("UPDATE transitions SET reward = ?, next_obs = ?, done = ? WHERE run_id = ? AND "
                          "source = 'live' AND tick = ? AND next_obs IS NULL",
                          (float(reward), _blob(next_obs), int(done), run_id, tick))
        return cur.rowcount == 1

    def last_decision(self, run_id: str) -> LiveDecision | None:
        row = self.db.execute("SELECT tick, action, bar_time, price, wallet_eth, wallet_usdc, next_obs IS NOT NULL "
                              "FROM transitions WHERE run_id = ? AND source = 'live' ORDER BY tick DESC LIMIT 1",
                              (run_id,)).fetchone()
        return None if row is None else LiveDecision(*row[:6], complete=bool(row[6]))

    def decisions(self, run_id: str) -> list[str]:
        """The decision records (JSON) of a run, in tick order: what decisions.jsonl is rebuilt from."""
        return [r[0] for r in self.db.execute("SELECT decision FROM transitions WHERE run_id = ? AND source = "
                                              "'live' AND decision IS NOT NULL ORDER BY tick", (run_id,))]

    def fill_of(self, run_id: str, tick: int) -> Fill:
        row = self.db.execute("SELECT fill FROM transitions WHERE run_id = ? AND source = 'live' AND tick = ?",
                              (run_id, tick)).fetchone()
        return Fill(**json.loads(row[0]))

    def fills(self, run_id: str | None = None) -> list[Fill]:
        sql = "SELECT fill FROM transitions WHERE source = 'live' AND fill IS NOT NULL"
        rows = self.db.execute(sql + (" AND run_id = ?" if run_id else ""), (run_id,) if run_id else ()).fetchall()
        return [Fill(**json.loads(r[0])) for r in rows]

    def count(self, run_id: str | None = None, source: str = "live") -> int:
        sql = "SELECT count(*) FROM transitions WHERE source = ?"
        args: tuple = (source,)
        if run_id:
            sql, args = sql + " AND run_id = ?", (source, run_id)
        return int(self.db.execute(sql, args).fetchone()[0])

    # -- history (the training data) ----------------------------------------------------------------------
    def add_history(self, run_id: str, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                    next_obs: np.ndarray, dones: np.ndarray) -> int:
        now = time.time()
        start = self.count(run_id, "history")
        rows = [(run_id, start + i, _blob(o), int(a), float(r), _blob(n), int(d), now)
                for i, (o, a, r, n, d) in enumerate(zip(obs, actions, rewards, next_obs, dones))]
        self._write("BEGIN IMMEDIATE")
        try:
            self.db.executemany("INSERT OR IGNORE INTO transitions (run_id, source, tick, obs, action, reward, "
                                "next_obs, done, created_at) VALUES (?, 'history', ?, ?, ?, ?, ?, ?, ?)", rows)
            self._write("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return len(rows)

    # -- what the learner reads --------------------------------------------------------------------------
    def ready_ids(self, after_id: int = 0, live_before_bar: int | None = None) -> list[int]:
        """Complete transitions with id > `after_id`; live ones only if their bar opened before `live_before_bar`
        (the most recent window is held out for the promotion gate)."""
        sql = "SELECT id FROM transitions WHERE id > ? AND next_obs IS NOT NULL AND usable = 1"
        args: list = [after_id]
        if live_before_bar is not None:
            sql += " AND (source = 'history' OR bar_time < ?)"
            args.append(live_before_bar)
        return [r[0] for r in self.db.execute(sql + " ORDER BY id", args)]

    def first_pending_id(self, after_id: int, live_before_bar: int | None = None) -> int | None:
        """The oldest row after `after_id` that `ready_ids` would not return yet."""
        sql = "SELECT min(id) FROM transitions WHERE id > ? AND usable = 1 AND (next_obs IS NULL"
        args: list = [after_id]
        if live_before_bar is not None:
            sql += " OR (source = 'live' AND bar_time >= ?)"
            args.append(live_before_bar)
        return self.db.execute(sql + ")", args).fetchone()[0]

    def batch(self, ids) -> Batch:
        ids = [int(i) for i in ids]
        marks = ",".join("?" * len(set(ids)))
        rows = {r[0]: r for r in self.db.execute(
            f"SELECT id, obs, action, reward, next_obs, done FROM transitions WHERE id IN ({marks})",
            sorted(set(ids)))}
        ordered = [rows[i] for i in ids]
        return Batch(np.array(ids), np.stack([np.frombuffer(r[1], dtype=np.float32) for r in ordered]),
                     np.array([r[2] for r in ordered], dtype=np.int64),
                     np.array([r[3] for r in ordered], dtype=np.float32),
                     np.stack([np.frombuffer(r[4], dtype=np.float32) for r in ordered]),
                     np.array([r[5] for r in ordered], dtype=np.float32))

    # -- learner state ----------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, values: dict[str, str]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items()))

    def save_learner(self, values: dict[str, str], priorities: list[tuple[int, float]]) -> None:
        """Learner step + priorities in one transaction: a kill leaves the previous or the new state, never half."""
        self._write("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM priorities")
            self.db.executemany("INSERT INTO priorities (id, priority) VALUES (?, ?)", priorities)
            self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items()))
            self._write("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def priorities(self) -> dict[int, float]:
        return dict(self.db.execute("SELECT id, priority FROM priorities").fetchall())
