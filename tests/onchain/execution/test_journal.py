"""The journal: crash-safe rows, one row per transaction, node identities, migration of older journals, and a
damaged file that is refused in one line and left untouched."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from onchain.execution.journal import Journal, JournalError
from onchain.execution.reconcile import reconcile
from onchain.execution.swap import execute_swap, propose_swap
from tests.conftest import HANG_S

pytestmark = pytest.mark.chain


class CrashAfterSend(Journal):
    """Our own process 'dies' right after the tx left, before the receipt was recorded."""

    def transition(self, trade_id, expected, **fields):
        if fields.get("status") == "confirmed":
            raise KeyboardInterrupt("simulated crash before recording the receipt")
        return super().transition(trade_id, expected, **fields)


def test_journal_is_sqlite_wal_and_lists_newest_first(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    assert j.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j.insert({"id": "a", "status": "proposed", "created_at": 1.0})
    j.insert({"id": "b", "status": "refused", "created_at": 2.0})
    assert [r["id"] for r in j.list_trades()] == ["b", "a"]
    assert [r["id"] for r in j.list_trades(status="proposed")] == ["a"]


def test_a_transaction_hash_belongs_to_one_row_only(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.insert({"id": "a", "status": "pending", "tx_hash": "0x01"})
    with pytest.raises(JournalError, match="UNIQUE"):
        j.insert({"id": "b", "status": "pending", "tx_hash": "0x01"})


def test_a_journal_of_the_previous_schema_is_migrated_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE trades (id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
               "chain_id INTEGER, account TEXT, venue TEXT, side TEXT, asset_in TEXT, asset_out TEXT, amount_in REAL, "
               "quoted_out REAL, min_out REAL, amount_out REAL, spot_price REAL, price REAL, notional_usd REAL, "
               "status TEXT NOT NULL, tx_hash TEXT, gas_used INTEGER, gas_cost_eth REAL, realised_loss_usd REAL, "
               "block INTEGER, reason TEXT)")
    db.execute("INSERT INTO trades (id, created_at, updated_at, status) VALUES ('old', 1, 1, 'confirmed')")
    db.commit()
    db.close()
    j = Journal(path)
    row = j.get("old")
    assert row["status"] == "confirmed" and {"node_id", "node_instance", "nonce", "approve_tx_hash"} <= row.keys()


@pytest.mark.parametrize("content,needle", [
    (b"this is not a database at all, just text\n" * 50, "not a database"),
    (b"SQLite format 3\x00" + b"\x10\x00\x01\x01" + b"\x00" * 60, "journal"),  # a truncated header
])
def test_a_garbage_or_truncated_journal_is_one_error_and_left_untouched(tmp_path, content, needle):
    path = tmp_path / "journal.sqlite"
    path.write_bytes(content)
    with pytest.raises(JournalError, match=needle) as err:
        Journal(path).list_trades()
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert path.read_bytes() == content


def test_a_journal_of_another_schema_is_refused(tmp_path):
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE trades (x INTEGER, y TEXT)")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="lacks .*status"):
        Journal(path)


def test_declined_and_expired_proposals_never_stay_proposed(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.insert({"id": "n", "status": "proposed", "deadline": 4_000_000_000})
    j.insert({"id": "old", "status": "proposed", "deadline": 1_000})
    assert j.decline("n", "declined at the prompt") and j.get("n")["status"] == "declined"
    assert not j.decline("n")  # only a proposal can be declined
    assert j.expire_stale() == 1 and j.get("old")["status"] == "expired"


def test_crash_after_send_is_reconciled_as_confirmed(chain, trader, tmp_path):
    path = tmp_path / "journal.sqlite"
    crashing = CrashAfterSend(path)
    proposal = propose_swap(chain, "sell", 0.3, "ETH", "v2", journal=crashing)
    with pytest.raises(KeyboardInterrupt):
        execute_swap(chain, proposal, crashing)
    crashing.close()
    journal = Journal(path)  # a fresh process opens the same file
    row = journal.get(proposal.id)
    assert row["status"] == "pending" and row["tx_hash"] and row["node_id"] == chain.node_id
    settled = reconcile(chain, journal)
    assert [r["id"] for r in settled] == [proposal.id]
    row = journal.get(proposal.id)
    assert row["status"] == "confirmed"
    assert row["amount_out"] == pytest.approx(proposal.quote.amount_out, rel=1e-12)
    assert row["gas_used"] > 21_000


def test_rows_of_another_node_are_never_judged_by_this_one(chain, trader, journal):
    """The replica and a mainnet fork are both chain id 1: a fork's pending row must not be marked dropped
    because the replica never saw its transaction."""
    unknown = "0x" + "cd" * 32
    for trade_id, node in (("fork-row", "1:0xd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3:fork"),
                           ("legacy-row", None)):
        journal.insert({"id": trade_id, "status": "pending", "chain_id": 1, "account": trader, "side": "sell",
                        "venue": "v2", "tx_hash": unknown if node else "0x" + "ce" * 32, "node_id": node,
                        "nonce": 0})
    assert reconcile(chain, journal) == []
    assert journal.get("fork-row")["status"] == "pending" and journal.get("legacy-row")["status"] == "pending"


def test_trades_command_on_a_damaged_journal_is_one_line(tmp_path):
    (tmp_path / "journal.sqlite").write_bytes(b"\x00garbage" * 100)
    for args in (["trades"], ["trades", "--json"]):
        proc = subprocess.run([sys.executable, "-c", "from agent.cli import main; main()", *args],
                              capture_output=True, text=True, timeout=HANG_S,
                              env={**_env(), "TRADER_HOME": str(tmp_path)})
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("error: cannot open the trade journal") and "move it aside" in proc.stderr
        assert proc.stdout == ""
    assert (tmp_path / "journal.sqlite").read_bytes() == b"\x00garbage" * 100


def _env():
    import os

    return dict(os.environ)
