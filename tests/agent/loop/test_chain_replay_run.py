"""`trader run --feed chain-replay --learn`: real closes swapped into a private replica, one bar of block time per
tick; the policy acts on the pool's own bars, fills carry the pool's price impact (and gas when executed), and
every decision becomes one stored transition."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from tests.agent.loop.test_online_learn import _env
from tests.conftest import HANG_S

pytestmark = pytest.mark.chain
LEARN = dict(learn=True, learn_history=400, candidate_every=100, gate_window=24, ask_model=False, interval_s=0,
             learner_nice=0)


def _run(chain_home, tmp_path, iterations: int, **mode):
    from agent.loop.autopilot import RunConfig, run_agent
    from onchain.api import PrivateReplica, get_portfolio
    from onchain.execution.wallet import fund
    from tests.conftest import clean_env

    mp = clean_env(chain_home)
    try:
        with PrivateReplica() as private:
            # mostly ETH: the DQN default is flat on the data's last bars, so it sells (the fills are under test)
            fund(private, get_portfolio(private).address, eth=10.0, usdc=5_000.0)
            before = get_portfolio(private)
            out = tmp_path / "run"
            decisions = run_agent(RunConfig(feed="chain-replay", iterations=iterations, rpc_url=private.rpc_url,
                                            out=str(out), **LEARN, **mode))
            after = get_portfolio(private)
    finally:
        mp.undo()
    con = sqlite3.connect(out / "learn" / "replay.sqlite")
    try:
        rows = con.execute("SELECT tick, fill FROM transitions WHERE source = 'live' ORDER BY tick").fetchall()
    finally:
        con.close()
    return decisions, [(t, json.loads(f) if f else None) for t, f in rows], before, after


def _common(decisions, rows, n):
    assert len(decisions) == n and [t for t, _ in rows] == list(range(n))  # N decisions -> N transitions
    assert not any("look-back" in d.reason or d.status == "stale" for d in decisions)  # the policy acts
    assert all(d.decided_by == "rl" for d in decisions)
    # one real close per tick, one hour of block time apart
    assert [b - a for a, b in zip([d.bar_time for d in decisions], [d.bar_time for d in decisions][1:])] \
        == [3600] * (n - 1)
    traded = [d for d in decisions if d.action != "HOLD"]
    assert traded, "the policy never traded in the replay"
    return traded


@pytest.mark.slow
def test_paper_learning_fills_at_the_pools_quote_with_impact(chain_home, tmp_path):
    decisions, rows, before, after = _run(chain_home, tmp_path, 5)
    traded = _common(decisions, rows, 5)
    fills = [f for t, f in rows if decisions[t].action != "HOLD"]
    assert all(d.status == "paper" for d in traded) and len(fills) == len(traded)
    assert all(f["impact_usd"] > 0 and f["fee_usd"] > 0 and f["gas_usd"] == 0 for f in fills)
    assert after.eth == pytest.approx(before.eth) and after.usdc == pytest.approx(before.usdc)  # nothing sent


@pytest.mark.slow
def test_executed_learning_swaps_on_the_replica_and_learns_gas_and_impact(chain_home, tmp_path):
    decisions, rows, before, after = _run(chain_home, tmp_path, 5, execute=True)
    traded = _common(decisions, rows, 5)
    assert all(d.status == "confirmed" and d.tx_hash for d in traded)
    fills = [f for t, f in rows if decisions[t].action != "HOLD"]
    assert len(fills) == len(traded)
    assert all(f["impact_usd"] > 0 and f["fee_usd"] > 0 and f["gas_usd"] > 0 for f in fills)
    assert after.usdc != pytest.approx(before.usdc)  # the wallet really traded
    # the journal's rows of those swaps carry the same costs, so `trader trades --stats` counts fee and impact
    from onchain.api import Journal

    journal = Journal()
    try:
        rows = {r["tx_hash"]: r for r in journal.list_trades() if r["status"] == "confirmed"}
    finally:
        journal.close()
    for d, f in zip(traded, fills):
        row = rows[d.tx_hash]
        assert row["impact_usd"] == pytest.approx(f["impact_usd"]) and row["fee_usd"] == pytest.approx(f["fee_usd"])
        assert row["gas_usd"] > 0


def test_chain_replay_without_a_chain_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "run", "--feed", "chain-replay", "--no-model",
                           "--iterations", "2", "--rpc-url", "http://127.0.0.1:9", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=HANG_S, env=_env(tmp_path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert "does not answer" in lines[0] and "trader chain up" in lines[0]
