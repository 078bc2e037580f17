"""Crash safety: rows are written before sending; a node that dies mid-swap gives a clean error and the
next `chain up` reconciles pending rows by tx hash."""

from __future__ import annotations

import pytest

from onchain.chain import connect, read_state
from onchain.journal import Journal
from onchain.swap import execute_swap, propose_swap
from tests.onchain.conftest import kill_hard
from trader_core.errors import ChainUnavailable

pytestmark = pytest.mark.chain


class CrashAfterSend(Journal):
    """Our own process 'dies' right after the tx left, before the receipt was recorded."""

    def update(self, trade_id, **fields):
        if fields.get("status") == "confirmed":
            raise KeyboardInterrupt("simulated crash before recording the receipt")
        super().update(trade_id, **fields)


class KillNodeWhenPending(Journal):
    """The node dies (SIGKILL, for real) the moment the row turns pending, before the tx is sent."""

    def update(self, trade_id, **fields):
        super().update(trade_id, **fields)
        if fields.get("status") == "pending":
            kill_hard(read_state().pid)


def test_journal_is_sqlite_wal_and_lists_newest_first(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    assert j.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j.insert({"id": "a", "status": "proposed", "created_at": 1.0})
    j.insert({"id": "b", "status": "refused", "created_at": 2.0})
    assert [r["id"] for r in j.list_trades()] == ["b", "a"]
    assert [r["id"] for r in j.list_trades(status="proposed")] == ["a"]


def test_crash_after_send_is_reconciled_as_confirmed(chain, trader, tmp_path):
    path = tmp_path / "journal.sqlite"
    crashing = CrashAfterSend(path)
    proposal = propose_swap(chain, "sell", 0.3, "ETH", "v2", journal=crashing)
    with pytest.raises(KeyboardInterrupt):
        execute_swap(chain, proposal, crashing)
    crashing.close()
    journal = Journal(path)  # a fresh process opens the same file
    row = journal.get(proposal.id)
    assert row["status"] == "pending" and row["tx_hash"]
    settled = journal.reconcile(chain)
    assert [r["id"] for r in settled] == [proposal.id]
    row = journal.get(proposal.id)
    assert row["status"] == "confirmed"
    assert row["amount_out"] == pytest.approx(proposal.quote.amount_out, rel=1e-12)
    assert row["gas_used"] > 21_000


def test_node_killed_mid_swap_clean_error_then_reconciled_on_restart(chain_home, trader, tmp_path, monkeypatch):
    from onchain.manage import start_chain

    monkeypatch.setattr("onchain.journal.journal_path", lambda: tmp_path / "journal.sqlite")
    journal = KillNodeWhenPending()
    chain = connect()
    proposal = propose_swap(chain, "sell", 0.2, "ETH", "v2", journal=journal)
    old_pid = read_state().pid
    with pytest.raises(ChainUnavailable, match="pending and will be reconciled") as err:
        execute_swap(chain, proposal, journal)
    assert "\n" not in str(err.value)
    row = journal.get(proposal.id)
    assert row["status"] == "pending" and row["tx_hash"]
    with pytest.raises(ChainUnavailable, match="trader chain up"):
        connect()
    info = start_chain()  # restarts from the replica dump and reconciles the journal
    assert info.pid != old_pid and info.running
    row = Journal().get(proposal.id)
    assert row["status"] == "dropped" and "restart" in row["reason"]
    assert connect().rpc("eth_getTransactionByHash", row["tx_hash"]) is None
