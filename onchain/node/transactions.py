"""Transactions from unlocked or impersonated accounts on a local anvil, and waiting for a receipt.

Used by the replica builders, the market replays and the swap path alike; they live on the node's floor so that
none of those rooms has to import another for them.
"""

from __future__ import annotations

import time

from onchain.node import chain as C
from trader_core.errors import ChainError, TransactionPending


def send_as(chain: C.Chain, sender: str, to: str | None, data: str, value: int = 0, gas: int = 12_000_000,
            nonce: int | None = None) -> dict:
    """eth_sendTransaction from an unlocked/impersonated account on anvil; returns the receipt or raises.
    `nonce`: sign at exactly this nonce (after anvil_setNonce moved an account's nonce back, anvil's own choice
    can still be the old, higher pending nonce: "nonce too low")."""
    tx = {"from": sender, "data": data, "value": hex(value), "gas": hex(gas)}
    if nonce is not None:
        tx["nonce"] = hex(nonce)
    if to is not None:
        tx["to"] = to
    tx_hash = chain.rpc("eth_sendTransaction", tx)
    receipt = wait_receipt(chain, tx_hash)
    if int(receipt["status"], 16) != 1:
        raise ChainError(f"replica setup transaction to {to or 'CREATE'} reverted (tx {tx_hash})")
    return receipt


def wait_receipt(chain: C.Chain, tx_hash: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        receipt = chain.rpc("eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            return receipt
        if time.monotonic() > deadline:
            raise TransactionPending(f"transaction {tx_hash} was not mined within {timeout:.0f}s")
        time.sleep(0.002)
