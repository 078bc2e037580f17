"""`trader ask --json`, `trader run`, `trader bench agent` and `trader demo` contracts, on real parts."""

from __future__ import annotations

import json
import os

import pytest

from tests.agent.conftest import journal_rows
from tests.conftest import HANG_S, run_trader



def _trader(home, *args, timeout=HANG_S):
    env = {**os.environ, "TRADER_HOME": str(home), "OLLAMA_HOST": os.environ.get("OLLAMA_HOST", "http://127.0.0.1:9")}
    return run_trader(args, env=env)


@pytest.mark.chain
@pytest.mark.llm
def test_ask_json_contract_and_no_execution_without_yes(chain_home):
    before = {r["id"] for r in journal_rows()}
    proc = _trader(chain_home, "ask", "sell 0.05 ETH", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # strict JSON on stdout, nothing else
    assert set(doc) == {"answer", "model", "plan", "tool_calls", "proposal", "safety"}
    assert doc["plan"]["intent"] == "propose" and doc["plan"]["amount"] == 0.05 and doc["plan"]["source"]
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


def test_without_a_chain_paper_trading_replays_one_bar_per_tick_with_the_paper_position(tmp_path):
    from agent.loop.autopilot import RunConfig, run_agent
    from tests.agent.conftest import scripted
    from trader_core.market_data import load_candles

    chat = scripted({"action": "SELL", "size_fraction": 0.5, "reason": "take profit"},
                    {"action": "BUY", "size_fraction": 1.0, "reason": "buy back"},
                    {"action": "HOLD", "reason": "wait"}, {"action": "HOLD", "reason": "wait"})
    out = tmp_path / "run"
    decisions = run_agent(RunConfig(iterations=4, ask_model=False, trade_eth=0.2, out=str(out)), chat=chat)
    data = load_candles("chainlink-eth-1h")
    # each tick is the next real bar (no chain: a replay of the policy's data), never the same bar again
    assert [d.bar_time for d in decisions] == [int(t) for t in data.timestamps[-4:]]
    assert [d.price for d in decisions] == pytest.approx([float(c) for c in data.close[-4:]])
    assert [(d.action, d.status, d.decided_by) for d in decisions[:2]] == [("SELL", "paper", "llm"),
                                                                          ("BUY", "paper", "llm")]
    # the paper wallet (1 ETH + its value in USDC) is the position the policy sees, not a real wallet's
    assert decisions[0].position == pytest.approx(0.5, abs=1e-6) and decisions[1].position < 0.5
    first, second = decisions[0], decisions[1]
    assert first.pnl_usd == pytest.approx(-0.1 * (second.price - first.price), abs=1e-3) and first.pnl_usd != 0
    assert len({d.equity_usd for d in decisions}) > 1  # the paper wallet moves with the replayed market
    prompt = chat.seen[1][-1].content  # the second decision's prompt carries the first one and its PnL
    assert "tick 0: SELL 0.1 ETH" in prompt and "PnL" in prompt and "RL policy signal" in prompt
    paper = [r for r in journal_rows() if r["status"] == "paper" and r["reason"] == "take profit"]
    assert len(paper) == 1 and paper[0]["amount_in"] == pytest.approx(0.1) and paper[0]["tx_hash"] is None
    lines = (out / "decisions.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["bar_time"] == first.bar_time
    assert json.loads((out / "config.json").read_text())["feed"] == "auto"


@pytest.mark.chain
def test_a_frozen_market_is_said_once_and_never_traded_on(chain_home, tmp_path, capsys):
    from agent.loop.autopilot import RunConfig, run_agent
    from onchain.api import connect, get_portfolio

    before = get_portfolio(connect())
    decisions = run_agent(RunConfig(iterations=4, interval_s=0, ask_model=False, out=str(tmp_path / "f")))
    err = capsys.readouterr().err
    # tick 0: the policy decides on the replica's real history; then nothing moves: frozen, said once, held
    assert decisions[0].status != "stale" and "look-back not covered" not in decisions[0].reason
    assert all(d.action == "HOLD" and d.size_eth == 0 for d in decisions[1:])
    assert [d.status for d in decisions[1:]] == ["stale"] * 3 and all("frozen" in d.reason for d in decisions[1:])
    assert err.count("frozen market") == 1
    assert len({d.bar_time for d in decisions}) == 1 and all(d.pnl_usd in (None, 0.0) for d in decisions)
    assert get_portfolio(connect()).eth == pytest.approx(before.eth)  # paper mode never sends


@pytest.mark.chain
def test_kill_switch_stops_the_loop_before_any_tick(chain_home, tmp_path, monkeypatch):
    from agent.loop.autopilot import RunConfig, run_agent

    monkeypatch.setenv("TRADER_KILL", "1")
    assert run_agent(RunConfig(iterations=3, interval_s=0, ask_model=False, out=str(tmp_path / "k"))) == []


def test_execute_and_observe_exclude_each_other(tmp_path):
    from agent.loop.autopilot import RunConfig, run_agent
    from trader_core.errors import ConfigError

    with pytest.raises(ConfigError, match="exclude"):
        run_agent(RunConfig(execute=True, observe=True, out=str(tmp_path / "x")))


@pytest.mark.chain
@pytest.mark.llm
def test_bench_agent_json_contract(chain_home):
    proc = _trader(chain_home, "bench", "agent", "--json", "--turns", "4", "--llm-turns", "2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {"turn_overhead_ms", "tokens_per_s", "llm_turns"} <= set(doc)
    assert doc["turn_overhead_ms"] > 0 and doc["tokens_per_s"] > 0 and doc["direct_ms"] > 0
    turns = doc["llm_turns"]  # whole turns with the auto model (SmolLM2 in tests)
    assert turns["turns"] == 2 and 0 < turns["p50_s"] <= turns["max_s"] and sum(turns["plan_sources"].values()) == 2


@pytest.mark.chain
def test_execute_mode_trades_the_chain_wallet_on_live_hourly_bars(history_chain, tmp_path):
    from agent.loop.autopilot import RunConfig, run_agent
    from onchain.api import get_portfolio
    from tests.agent.conftest import scripted

    chain, stamps, _ = history_chain
    before = get_portfolio(chain)
    chat = scripted({"action": "SELL", "size_fraction": 0.5, "reason": "trim"}, {"action": "HOLD", "reason": "wait"})
    decisions = run_agent(RunConfig(iterations=2, interval_s=0, ask_model=False, execute=True, trade_eth=0.1,
                                    rpc_url=chain.rpc_url, out=str(tmp_path / "exec")), chat=chat)
    first = decisions[0]
    assert first.mode == "execute" and first.bar_time == stamps[-1]  # the live bars, not the 2024 file
    assert (first.action, first.status) == ("SELL", "confirmed") and first.tx_hash
    assert first.position == pytest.approx(before.eth * before.price / before.value_usd, rel=1e-3)
    rows = {r["tx_hash"]: r for r in journal_rows() if r["tx_hash"]}
    assert rows[first.tx_hash]["status"] == "confirmed" and rows[first.tx_hash]["amount_in"] == pytest.approx(0.05)
    assert get_portfolio(chain).eth < before.eth - 0.05


@pytest.mark.chain
def test_run_execute_refuses_a_replay_feed(tmp_path):
    from agent.loop.autopilot import RunConfig, run_agent
    from trader_core.errors import ConfigError

    with pytest.raises(ConfigError, match="live feed"):
        run_agent(RunConfig(execute=True, feed="replay", out=str(tmp_path / "x")))


@pytest.mark.parametrize("args, fragment", [
    (["run", "--interval", "1e308s"], "--interval '1e308s' must be between 0s and 7d"),
    (["run", "--interval", "99999999h"], "must be between 0s and 7d"),
    (["run", "--interval", "1e309s"], "must be between 0s and 7d"),
    (["run", "--interval", "soon"], "is not a duration"),
    (["run", "--out", "{file}"], "is a file; pass a folder"),
    (["run", "--out", "{missing}/run"], "does not exist; create it first"),
    (["run", "--iterations", "0"], "iterations"),
])
def test_run_bad_input_is_one_line(tmp_path, args, fragment):
    existing = tmp_path / "a-file"
    existing.write_text("keep me")
    args = [a.format(file=existing, missing=tmp_path / "no" / "such") for a in args]
    if "--iterations" not in args:
        args += ["--iterations", "1"]
    proc = _trader(tmp_path / "home", *args, "--no-model", timeout=HANG_S)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
    assert existing.read_text() == "keep me" and not (tmp_path / "no").exists()


def test_bad_llm_threads_is_one_line_not_a_fallback(tmp_path):
    env_home = tmp_path / "home"
    proc = run_trader(["ask", "what is the ETH price?"],
                          env={**os.environ, "TRADER_HOME": str(env_home), "TRADER_LLM_THREADS": "abc",
                               "OLLAMA_HOST": "http://127.0.0.1:9", "TRADER_GGUF": "none"})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: TRADER_LLM_THREADS must be a whole number"), proc.stderr
