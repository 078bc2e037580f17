"""Settle the journal against the node that saw each transaction: on every connect, at `chain up`, and by
`trader trades --reconcile`.

A pending row is settled from its receipt (confirmed / reverted); left pending while the node still holds the
transaction; `dropped` only when the same node process (anvil's instance id) says it never mined it and does
not hold it, or its nonce went to another transaction; `orphaned` when the node it was sent to has since
restarted from saved state that does not contain it. Confirmed rows of a node's earlier run are checked too.
Rows are matched by node identity (chain id + genesis hash + mode), and each account's rows are judged under
its signing lock, so a send in flight is never mistaken for a lost one.
"""

from __future__ import annotations

import sys
from typing import Any

from onchain.node import chain as C
from onchain.execution.journal import Journal, JournalError, default_journal, journal_path
from onchain.node.locks import signing_lock
from onchain.execution.receipts import gas_of, settlement
from trader_core.errors import ChainError


def connect(rpc_url: str | None = None, timeout: float = 30.0) -> C.Chain:
    """`onchain.node.chain.connect`, then reconcile this home's journal with the node (if there is a journal).

    A journal that cannot be read is a warning here (reading a price must not need it); commands that write
    the journal fail on it themselves.
    """
    chain = C.connect(rpc_url, timeout)
    if journal_path().exists():
        try:
            reconcile(chain, default_journal(), lock_timeout=0.5)
        except JournalError as exc:
            print(f"warning: journal not reconciled: {exc}", file=sys.stderr)
    return chain


def reconcile(chain: C.Chain, journal: Journal | None = None, lock_timeout: float = 120.0) -> list[dict[str, Any]]:
    """Settle this node's open rows (and re-check rows confirmed by an earlier run of it); returns the rows
    that changed. Accounts whose signing lock stays busy past `lock_timeout` are left for the next call."""
    journal = journal or default_journal()
    journal.expire_stale(node_id=chain.node_id, node_now=chain.block_timestamp())
    changed: list[dict[str, Any]] = []
    rows = journal.rows_to_reconcile(chain.chain_id)
    if rows:
        node = chain.node_id
        accounts: dict[str, list[str]] = {}
        for row in rows:
            if row["node_id"] in (node, None) and row["account"]:
                accounts.setdefault(row["account"], []).append(row["id"])
        for account, ids in accounts.items():
            try:
                with signing_lock(chain, account, timeout=lock_timeout):
                    changed += _settle_rows(chain, journal, ids)
            except ChainError:
                continue  # a swap of this account is in flight; it settles its own row
    if chain.instance:
        changed += _recheck_after_restart(chain, journal)
    return changed


def _settle_rows(chain: C.Chain, journal: Journal, ids: list[str]) -> list[dict[str, Any]]:
    out = []
    for trade_id in ids:
        row = journal.get(trade_id)
        if row is None or row["status"] != "pending":
            continue
        fields = _judge(chain, row)
        if fields and journal.transition(trade_id, "pending", **fields):
            out.append(journal.get(trade_id))
    return out


def _receipt(chain: C.Chain, tx_hash: str | None) -> dict | None:
    return chain.rpc("eth_getTransactionReceipt", tx_hash) if tx_hash else None


def _judge(chain: C.Chain, row: dict[str, Any]) -> dict[str, Any] | None:
    """The fields that settle a pending row, or None to leave it pending."""
    swap_hash, approve_hash = row["tx_hash"], row["approve_tx_hash"]
    approve = _receipt(chain, approve_hash)
    approve_gas = gas_of(approve)[1] if approve else 0.0
    if swap_hash:
        receipt = _receipt(chain, swap_hash)
        if receipt is not None:
            return {**settlement(row, receipt, approve_gas), "node_instance": chain.instance}
        if chain.rpc("eth_getTransactionByHash", swap_hash) is not None:
            return None  # still in the node's pool
        nonce = None if row["nonce"] is None else row["nonce"] + (1 if approve_hash else 0)
        fields = _not_on_chain(chain, row, "swap", swap_hash, nonce, approve_gas)
        if fields and approve is not None:
            fields["reason"] += f" (its USDC approval {approve_hash} was mined: that allowance is left)"
        return fields
    if approve_hash:
        if approve is not None:
            _, gas_eth, block = gas_of(approve)
            result = "" if int(approve["status"], 16) == 1 else ", which reverted"
            return {"status": "failed", "gas_cost_eth": gas_eth, "node_instance": chain.instance,
                    "reason": f"interrupted after the USDC approval (tx {approve_hash}, block {block}{result}) and "
                              "before the swap was sent; nothing was swapped"}
        if chain.rpc("eth_getTransactionByHash", approve_hash) is not None:
            return None
        return _not_on_chain(chain, row, "approval", approve_hash, row["nonce"], 0.0)
    return {"status": "failed", "reason": "interrupted before any transaction was signed; nothing was swapped"}


def _not_on_chain(chain: C.Chain, row: dict[str, Any], what: str, tx_hash: str, nonce: int | None,
                  gas_eth: float) -> dict[str, Any] | None:
    """A transaction this node neither mined nor holds: orphaned, dropped, or (when unsure) still pending."""
    if row["node_id"] is None:
        return None  # a row from before node identities: only a receipt may settle it
    sent_to, now = row["node_instance"], chain.instance
    extra = {"gas_cost_eth": gas_eth} if gas_eth else {}
    if sent_to and now and sent_to != now:
        saved = chain.info.restored_block if chain.info else None
        since = f" (from state saved at block {saved})" if saved is not None else ""
        return {"status": "orphaned", **extra,
                "reason": f"the {what} tx {tx_hash} is not on this chain: the node it was sent to has restarted "
                          f"since{since} and the restored chain does not contain it; nothing was swapped here"}
    used = int(chain.rpc("eth_getTransactionCount", row["account"], "latest"), 16)
    if nonce is not None and used > nonce:
        return {"status": "dropped", **extra,
                "reason": f"the {what} tx {tx_hash} was never mined and its nonce {nonce} went to another "
                          "transaction, so it never can be; nothing was swapped"}
    if sent_to and now and sent_to == now:
        return {"status": "dropped", **extra,
                "reason": f"the {what} tx {tx_hash} never reached the node: not mined, not in its pool, nonce "
                          f"{nonce} still unused; nothing was swapped"}
    return None  # a node without instance ids: another node may still hold it


def _recheck_after_restart(chain: C.Chain, journal: Journal) -> list[dict[str, Any]]:
    """Rows settled by an earlier run of this node: keep those the restored chain still has, orphan the rest."""
    rows = [r for r in journal.rows_on_chain(chain.node_id, chain.instance) if r["tx_hash"]]
    if not rows:
        return []
    receipts = chain.rpc.batch([("eth_getTransactionReceipt", [r["tx_hash"]]) for r in rows])
    changed = []
    for row, receipt in zip(rows, receipts):
        if receipt is not None:
            journal.update(row["id"], node_instance=chain.instance)
            continue
        saved = chain.info.restored_block if chain.info else None
        since = f" (state saved at block {saved})" if saved is not None else ""
        if journal.transition(row["id"], row["status"], status="orphaned", node_instance=chain.instance,
                              reason=f"was {row['status']} in block {row['block']}, but the node restarted{since} "
                                     "and the restored chain does not contain it; nothing was swapped here"):
            changed.append(journal.get(row["id"]))
    return changed
