"""`trader trades --stats`: slippage vs quote, fees, impact and gas of journalled fills."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from onchain.execution.quality import row_slippage_bps, summarise
from onchain.execution.journal import Journal


def _rows():
    return [
        {"id": "p1", "status": "paper", "side": "buy", "asset_in": "USDC", "amount_in": 1000.0, "quote_price": 2000.0,
         "executed_price": 2006.0, "slippage_bps": 30.0, "fee_usd": 3.0, "impact_usd": 0.0, "gas_usd": 0.0},
        {"id": "p2", "status": "paper", "side": "sell", "asset_in": "ETH", "amount_in": 0.5, "quote_price": 2000.0,
         "executed_price": 1990.0, "slippage_bps": 50.0, "fee_usd": 3.0, "impact_usd": 2.0, "gas_usd": 0.0},
        # an older swap row without the quality columns: slippage from quoted vs received, gas from ETH
        {"id": "s1", "status": "confirmed", "side": "sell", "asset_in": "ETH", "amount_in": 1.0, "spot_price": 2000.0,
         "quoted_out": 1994.0, "amount_out": 1992.0, "gas_cost_eth": 0.001, "notional_usd": 2000.0},
        {"id": "r1", "status": "refused", "side": "buy", "asset_in": "USDC", "amount_in": 50.0},
    ]


def test_summary_by_hand():
    s = summarise(_rows())
    assert s.fills == 3 and s.by_status == {"paper": 2, "confirmed": 1}
    assert row_slippage_bps(_rows()[2]) == pytest.approx(2 / 1994 * 1e4)
    assert s.slippage_bps_mean == pytest.approx((30 + 50 + 2 / 1994 * 1e4) / 3)
    assert s.slippage_bps_median == pytest.approx(30.0)
    assert (s.fee_usd, s.impact_usd) == (6.0, 2.0) and s.gas_usd == pytest.approx(2.0)
    assert s.notional_usd == pytest.approx(1000 + 1000 + 2000)
    assert s.cost_bps == pytest.approx(10 / 4000 * 1e4)


def test_trades_stats_command_reads_the_journal(tmp_path, monkeypatch):
    from agent.cli import app

    monkeypatch.setenv("TRADER_HOME", str(tmp_path))
    j = Journal()
    for r in _rows():
        j.insert(r)
    j.close()
    res = CliRunner().invoke(app, ["trades", "--stats", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["fills"] == 3 and out["fee_usd"] == 6.0
    text = CliRunner().invoke(app, ["trades", "--stats"]).output
    assert "3 fills (1 confirmed, 2 paper)" in text and "fee 6.00 + impact 2.00 + gas 2.00 USD" in text
