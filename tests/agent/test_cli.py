"""`trader ask --json`, `trader run`, `trader bench agent` and `trader demo` contracts, on real parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.conftest import journal_rows

TRADER = Path(sys.executable).parent / "trader"


def _trader(home, *args, timeout=300):
    env = {**os.environ, "TRADER_HOME": str(home), "OLLAMA_HOST": os.environ.get("OLLAMA_HOST", "http://127.0.0.1:9")}
    return subprocess.run([str(TRADER), *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.chain
@pytest.mark.llm
def test_ask_json_contract_and_no_execution_without_yes(chain_home):
    before = {r["id"] for r in journal_rows()}
    proc = _trader(chain_home, "ask", "sell 0.05 ETH", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # strict JSON on stdout, nothing else
    assert set(doc) == {"answer", "model", "tool_calls", "proposal"}
    assert doc["tool_calls"][0]["name"] == "propose_swap" and set(doc["tool_calls"][0]) == {"name", "args", "result"}
    assert doc["proposal"]["risk"]["ok"] and doc["answer"] and "SmolLM2" in doc["model"]
    new = [r for r in journal_rows() if r["id"] not in before]
    assert [r["status"] for r in new] == ["proposed"]  # no --yes: nothing was signed


@pytest.mark.chain
@pytest.mark.llm
def test_ask_yes_executes_and_json_has_the_receipt(chain_home):
    proc = _trader(chain_home, "ask", "sell 0.05 ETH", "--json", "--yes")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    receipt = next(c for c in doc["tool_calls"] if c["name"] == "execute_swap")["result"]
    assert receipt["status"] == "confirmed"
    assert next(r for r in journal_rows() if r["id"] == doc["proposal"]["id"])["status"] == "confirmed"


def test_ask_rejects_an_empty_question_in_one_line(tmp_path):
    proc = _trader(tmp_path, "ask", "  ")
    assert proc.returncode == 1 and proc.stderr.startswith("error: empty question")
    assert "Traceback" not in proc.stderr


@pytest.mark.chain
def test_autonomous_loop_paper_trades_with_memory_and_journal(chain_home, tmp_path):
    from agent.autopilot import RunConfig, run_agent
    from onchain import connect, get_portfolio

    before = get_portfolio(connect())
    out = tmp_path / "run"
    decisions = run_agent(RunConfig(iterations=3, interval_s=0, ask_model=False, out=str(out)))
    assert len(decisions) == 3
    for d in decisions:
        assert d.mode == "paper" and d.action in ("BUY", "SELL", "HOLD")
        assert d.decided_by == "rl" and d.action == d.rl_action  # the embedded 135M model defers to the policy
        assert d.status in ("none", "paper", "refused")
    assert all(d.pnl_usd is not None for d in decisions[:-1])  # each decision is marked at the next tick
    lines = (out / "decisions.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["tick"] == 0
    assert json.loads((out / "config.json").read_text())["iterations"] == 3
    assert get_portfolio(connect()).eth == pytest.approx(before.eth)  # paper mode never sends


@pytest.mark.chain
def test_kill_switch_stops_the_loop_before_any_tick(chain_home, tmp_path, monkeypatch):
    from agent.autopilot import RunConfig, run_agent

    monkeypatch.setenv("TRADER_KILL", "1")
    assert run_agent(RunConfig(iterations=3, interval_s=0, ask_model=False, out=str(tmp_path / "k"))) == []


def test_execute_and_observe_exclude_each_other(tmp_path):
    from agent.autopilot import RunConfig, run_agent
    from trader_core.errors import ConfigError

    with pytest.raises(ConfigError, match="exclude"):
        run_agent(RunConfig(execute=True, observe=True, out=str(tmp_path / "x")))


@pytest.mark.chain
@pytest.mark.llm
def test_bench_agent_json_contract(chain_home):
    proc = _trader(chain_home, "bench", "agent", "--json", "--turns", "4")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {"turn_overhead_ms", "tokens_per_s"} <= set(doc)
    assert doc["turn_overhead_ms"] > 0 and doc["tokens_per_s"] > 0 and doc["direct_ms"] > 0


@pytest.mark.chain
@pytest.mark.llm
@pytest.mark.slow
def test_demo_ends_with_a_confirmed_swap_and_stops_its_chain(tmp_path, capsys):
    from agent.demo import run_demo
    from onchain import chain_status

    home = tmp_path / "demo"
    run_demo(quick=True, home=home)
    out = capsys.readouterr().out
    for expected in ("backtest", "anvil replica up", "✓ get_price", "Execute this swap? [y/N] y", "confirmed",
                     "chain stopped"):
        assert expected in out, expected
    os.environ["TRADER_HOME"] = str(home)  # restored by the autouse fixture's monkeypatch
    info = chain_status()
    assert info is None or not info.running


@pytest.mark.chain
def test_autonomous_loop_execute_mode_sends_only_guarded_swaps(chain_home, tmp_path):
    from agent.autopilot import RunConfig, run_agent

    decisions = run_agent(RunConfig(iterations=2, interval_s=0, ask_model=False, execute=True, trade_eth=0.05,
                                    out=str(tmp_path / "exec")))
    rows = {r["id"]: r for r in journal_rows()}
    by_hash = {r["tx_hash"]: r for r in rows.values() if r["tx_hash"]}
    for d in decisions:
        assert d.mode == "execute"
        if d.action == "HOLD":
            assert d.status == "none" and d.tx_hash is None
        elif d.status == "confirmed":
            assert by_hash[d.tx_hash]["status"] == "confirmed"
        else:
            assert d.status in ("refused", "failed") and d.detail


@pytest.mark.chain
def test_loop_decisions_from_a_model_carry_memory_and_pnl_into_the_next_prompt(chain_home, tmp_path):
    from agent.autopilot import RunConfig, run_agent
    from tests.agent.conftest import scripted

    chat = scripted({"action": "SELL", "size_fraction": 0.5, "reason": "take profit"},
                    {"action": "HOLD", "size_fraction": 0, "reason": "wait"})
    decisions = run_agent(RunConfig(iterations=2, interval_s=0, ask_model=False, trade_eth=0.1,
                                    out=str(tmp_path / "m")), chat=chat)
    first, second = decisions
    assert (first.action, first.decided_by, first.size_eth, first.status) == ("SELL", "llm", 0.05, "paper")
    assert second.action == "HOLD" and first.pnl_usd is not None
    paper = [r for r in journal_rows() if r["status"] == "paper" and r["reason"] == "take profit"]
    assert len(paper) == 1 and paper[0]["amount_in"] == pytest.approx(0.05) and paper[0]["tx_hash"] is None
    prompt = chat.seen[1][-1].content  # the second decision's prompt
    assert "tick 0: SELL 0.05 ETH" in prompt and "PnL" in prompt and "RL policy signal" in prompt
