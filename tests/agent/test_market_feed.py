"""One live feed serves the agent: `get_rl_signal`, `trader signal` and `trader run` read the same candles (the
pool's swaps at their block times, continuing the policy's history only at real times), say how old they are,
and hold rather than act on stale data or on a look-back the live bars do not cover."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import run_trader



@pytest.mark.chain
def test_the_policy_acts_on_hours_of_live_bars_at_their_real_times(history_chain):
    from agent.turn.tools import ToolSession
    from onchain.api import get_portfolio

    chain, stamps, closes = history_chain
    tools = ToolSession(rpc_url=chain.rpc_url)
    call = tools.call("get_rl_signal")
    assert call.ok, call.error
    sig = call.value
    assert sig.reason is None and sig.features and sig.action == sig.policy_action  # it really decided
    assert sig.bar_time == stamps[-1] and sig.price == pytest.approx(closes[-1], rel=1e-4)
    assert sig.continuous_bars >= sig.needed_bars and sig.live_bars >= len(stamps) and not sig.stale
    pf = get_portfolio(chain)
    assert sig.position == pytest.approx(pf.eth * pf.price / pf.value_usd, abs=1e-4) and sig.wallet == "chain wallet"


def test_without_a_chain_the_bundled_data_is_stale_and_the_signal_holds_saying_so(tmp_path):
    from agent.turn.tools import ToolSession

    tools = ToolSession(rpc_url="http://127.0.0.1:9")  # nothing listens there
    sig = tools.call("get_rl_signal").value
    assert sig.action == "HOLD" and sig.stale and sig.bar_age_s > 300 * 86_400
    assert "stale" in sig.reason and "trader chain up" in sig.reason and sig.wallet.startswith("no chain")
    assert sig.data == "chainlink-eth-1h (bundled)" and sig.live_bars == 0


def test_trader_signal_json_reports_bar_time_age_and_source(tmp_path):
    env = {**os.environ, "TRADER_HOME": str(tmp_path), "OLLAMA_HOST": "http://127.0.0.1:9"}
    env.pop("TRADER_RPC_URL", None)
    proc = run_trader(["signal", "--json"], env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["action"] == "HOLD" and doc["stale"] and doc["bar_age_s"] > 0 and doc["data"].endswith("(bundled)")
    bad = run_trader(["signal", "--position", "-1"], env=env)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: --position must be")


@pytest.mark.chain
def test_paper_trading_on_the_live_chain_uses_the_paper_position_not_the_wallets(history_chain, tmp_path, capsys):
    from agent.loop.autopilot import RunConfig, run_agent
    from onchain.api import get_portfolio
    from tests.agent.conftest import scripted

    chain, stamps, _ = history_chain
    real = get_portfolio(chain)
    chat = scripted({"action": "SELL", "size_fraction": 1.0, "reason": "trim"})
    first, second = run_agent(RunConfig(iterations=2, interval_s=0, ask_model=False, trade_eth=50.0,
                                        rpc_url=chain.rpc_url, out=str(tmp_path / "paper")), chat=chat)
    assert (first.mode, first.action, first.status, first.bar_time) == ("paper", "SELL", "paper", stamps[-1])
    # the paper wallet starts as a copy of the real one, then only it moves: the second tick sees its position
    assert first.position == pytest.approx((real.eth + real.weth) * real.price / real.value_usd, abs=1e-3)
    assert second.position < first.position - 1e-3
    after = get_portfolio(chain)
    assert after.eth == pytest.approx(real.eth) and after.usdc == pytest.approx(real.usdc)  # nothing was sent
    # nothing moved on the chain between the ticks: a frozen market, held and said once
    assert (second.action, second.status) == ("HOLD", "stale") and capsys.readouterr().err.count("frozen") == 1
