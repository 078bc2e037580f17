"""Concurrent `trader swap` processes on one account and one node: each gets its own nonce, its own transaction
and its own journal row, and the balances add up to exactly what the journal says."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from onchain.execution.journal import Journal
from onchain.node.rpc import calldata
from tests.conftest import HANG_S

pytestmark = pytest.mark.chain
RUN_TRADER = "from agent.cli import main; main()"


def _balances(chain, address) -> tuple[int, int, int]:
    eth, usdc, nonce = chain.rpc.batch([
        ("eth_getBalance", [address, "latest"]),
        ("eth_call", [{"to": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
                       "data": calldata("balanceOf(address)", address)}, "latest"]),
        ("eth_getTransactionCount", [address, "latest"]),
    ])
    return int(eth, 16), int(usdc, 16), int(nonce, 16)


def _swaps_at_once(home, orders: list[tuple[str, ...]]) -> list[dict]:
    env = {**os.environ, "TRADER_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-c", RUN_TRADER, "swap", *order, "--yes", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for order in orders]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=HANG_S)
        assert proc.returncode == 0, err
        outs.append(json.loads(out))
    return outs


def _check_books(chain, trader, before, receipts) -> None:
    """N receipts: N distinct confirmed transactions, N journal rows, nonces and balances that add up."""
    hashes = [r["tx_hash"] for r in receipts]
    assert len(set(hashes)) == len(receipts) and all(r["status"] == "confirmed" for r in receipts)
    rows = {r["tx_hash"]: r for r in Journal().list_trades(status="confirmed") if r["tx_hash"] in hashes}
    assert len(rows) == len(receipts)  # one row per transaction, none reported twice
    for h in hashes:
        receipt = chain.rpc("eth_getTransactionReceipt", h)
        assert receipt is not None and int(receipt["status"], 16) == 1
    eth, usdc, nonce = _balances(chain, trader)
    assert nonce == before[2] + len(receipts)
    spent = sum(round(r["amount_in"] * 1e18) + round(r["gas_cost_eth"] * 1e18) for r in rows.values())
    assert before[0] - eth == pytest.approx(spent, abs=1e4)  # wei rounding of the float columns only
    assert usdc - before[1] == sum(round(r["amount_out"] * 1e6) for r in rows.values())


def test_two_identical_swaps_at_once_are_two_transactions(chain, trader, chain_home):
    before = _balances(chain, trader)
    receipts = _swaps_at_once(chain_home, [("sell", "0.1", "ETH")] * 2)
    _check_books(chain, trader, before, receipts)


@pytest.mark.slow
def test_eight_simultaneous_swaps_on_one_account(chain, trader, chain_home):
    before = _balances(chain, trader)
    orders = [("sell", f"0.{i}", "ETH", "--venue", "v2" if i % 2 else "v3") for i in range(1, 9)]
    receipts = _swaps_at_once(chain_home, orders)
    _check_books(chain, trader, before, receipts)
    assert sorted(r["amount_in"] for r in receipts) == [i / 10 for i in range(1, 9)]
