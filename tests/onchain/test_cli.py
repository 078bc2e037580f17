"""The `trader` commands of this package: JSON contracts, one-line errors, no secrets in any output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from onchain.node import chain as C
from tests.conftest import HANG_S, run_trader

pytestmark = pytest.mark.chain
RUN_TRADER = "from agent.cli import main; main()"


def trader(*args: str, env: dict | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    proc = run_trader(args, env={**os.environ, **(env or {})})
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def as_json(*args: str, **kw):
    return json.loads(trader(*args, "--json", **kw).stdout)


def test_chain_status_up_and_market_json_contracts(chain, trader_funded):
    status = as_json("chain", "status")
    assert {"rpc_url", "pid", "chain_id", "mode"} <= status.keys() and status["mode"] == "replica"
    assert as_json("chain", "up") == {**status, "running": True}  # idempotent: same node
    price = as_json("price", "--venue", "v3")
    assert set(price) == {"venue", "price"} and price["price"] > 0
    q = as_json("quote", "sell", "0.5", "ETH")
    assert {"venue", "side", "amount_in", "amount_out", "price_impact_bps"} <= q.keys()
    assert q["amount_in"] == 0.5 and 0 < q["amount_out"] < 0.5 * q["spot_price"]
    dry = as_json("swap", "sell", "0.5", "ETH", "--dry-run")
    assert dry["status"] == "dry-run" and dry["tx_hash"] is None
    s = as_json("swap", "buy", "800", "USDC", "--venue", "v3", "--yes")
    assert {"status", "tx_hash", "amount_in", "amount_out", "gas_used"} <= s.keys()
    assert s["status"] == "confirmed" and s["amount_in"] == 800.0 and s["gas_used"] > 0
    p = as_json("portfolio")
    assert set(p) >= {"address", "eth", "weth", "usdc"} and p["address"] == trader_funded
    rows = as_json("trades")
    assert isinstance(rows, list) and rows[0]["tx_hash"] == s["tx_hash"] and rows[0]["status"] == "confirmed"
    assert rows[1]["status"] == "dry-run"


def test_fund_and_replay_commands(chain):
    addr = "0x000000000000000000000000000000000000dEaD"
    funded = as_json("chain", "fund", addr, "--eth", "3", "--usdc", "42.5")
    assert funded["eth"] == 3.0 and funded["usdc"] == 42.5
    replayed = as_json("chain", "replay", "--steps", "3")
    assert replayed["steps"] == 3 and replayed["max_error_bps"] < 1


@pytest.mark.parametrize("args,needle", [
    (("quote", "sell", "nan", "ETH"), "positive finite"),
    (("swap", "sell", "-1", "ETH", "--yes"), "positive finite"),
    (("quote", "sell", "1", "DOGE"), "unknown asset"),
    (("swap", "sell", "1", "ETH", "--json"), "--yes"),
    (("swap", "sell", "1", "ETH", "--deadline", "soon", "--yes"), "interval"),
    (("chain", "fund", "0x1234", "--eth", "1"), "not an Ethereum address"),
    (("chain", "up", "--fork-block", "5"), "needs --fork-url"),
])
def test_bad_input_is_one_clear_line(chain, args, needle):
    proc = trader(*args, ok=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr


def test_risk_config_refusal_and_no_key_in_output(chain, tmp_path):
    key_acct = C.dev_account(3)
    from onchain.manage import fund

    fund(chain, key_acct.address, eth=5)
    risk = tmp_path / "risk.json"
    risk.write_text(json.dumps({"max_notional_usd": 10}))
    env = {"TRADER_PRIVATE_KEY": key_acct.key.hex()}
    refused = trader("swap", "sell", "0.1", "ETH", "--yes", "--risk-config", str(risk), env=env, ok=False)
    assert refused.returncode == 1 and "max_notional_usd" in refused.stderr
    done = trader("swap", "sell", "0.1", "ETH", "--yes", "--json", env=env)
    assert json.loads(done.stdout)["status"] == "confirmed"
    for out in (refused.stdout, refused.stderr, done.stdout, done.stderr):
        assert key_acct.key.hex()[2:] not in out


def test_status_without_chain_exits_1(tmp_path):
    proc = trader("chain", "status", "--json", env={"TRADER_HOME": str(tmp_path)}, ok=False)
    assert proc.returncode == 1 and json.loads(proc.stdout)["running"] is False
    proc = trader("price", env={"TRADER_HOME": str(tmp_path)}, ok=False)
    assert proc.stderr.strip() == "error: no chain is running; run `trader chain up` (or pass --rpc-url)"


def test_missing_anvil_is_one_clear_error(monkeypatch):
    from onchain.node.artifacts import find_anvil
    from trader_core.errors import DependencyMissing

    monkeypatch.setenv("ANVIL_BIN", "/nonexistent/anvil")
    with pytest.raises(DependencyMissing, match="ANVIL_BIN"):
        find_anvil()


def test_fork_url_is_never_printed_or_logged(tmp_path):
    url = "http://127.0.0.1:1/v2/s3cr3tk3y?apikey=hunter2"
    proc = trader("chain", "up", "--fork-url", url, env={"TRADER_HOME": str(tmp_path)}, ok=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: anvil exited")
    logged = (tmp_path / "chain" / "anvil.log").read_text()
    for text in (proc.stdout, proc.stderr, logged):
        assert "s3cr3tk3y" not in text and "hunter2" not in text


def test_mask_url():
    from onchain.node.rpc import mask_url

    assert mask_url("https://nd-1.p2pify.com/abc123") == "https://nd-1.p2pify.com/***"
    assert mask_url("https://eth.llamarpc.com") == "https://eth.llamarpc.com"
    assert mask_url("http://user:pw@host:8545/?k=1") == "http://host:8545/***"


def test_bench_chain_json_contract(chain_home):
    out = as_json("bench", "chain", "--quotes", "20", "--swaps", "5")
    assert {"quote_p50_ms", "swaps_per_s", "raw_swaps_per_s"} <= out.keys()
    assert out["quote_p50_ms"] > 0 and out["swaps_per_s"] > 0 and out["raw_swaps_per_s"] > 0
    assert out["v3_swaps_per_s"] > 0 and out["v4_quote_p50_ms"] > 0  # V4 on a private Base replica, same run
    assert out["v4_swaps_per_s"] > 0 and out["v4_usdc_swaps_per_s"] > 0


def test_chain_up_starts_a_realistic_wallet_so_the_readme_buy_works_right_away(chain_home, tmp_path):
    """Issue 8: after `trader chain up`, `trader swap buy 0.1 ETH --venue v2 --yes` works (the dev account used to
    hold 10,000 ETH and no USDC: the buy failed and the agent reported a $23M wallet)."""
    from tests.onchain.conftest import seeded_home

    home = {"TRADER_HOME": str(seeded_home(chain_home, tmp_path / "a"))}
    try:
        assert as_json("chain", "up", env=home)["mode"] == "replica"
        p = as_json("portfolio", env=home)
        assert (p["eth"], p["weth"], p["usdc"]) == (10.0, 0.0, 25_000.0) and p["value_usd"] < 60_000
        bought = as_json("swap", "buy", "0.1", "ETH", "--venue", "v2", "--yes", env=home)
        assert bought["status"] == "confirmed" and bought["amount_out"] == pytest.approx(0.1, rel=1e-3)
    finally:
        trader("chain", "down", env=home)
    other = {"TRADER_HOME": str(seeded_home(chain_home, tmp_path / "b")), "TRADER_WALLET_USDC": "1234.5"}
    try:
        trader("chain", "up", "--eth", "2", env=other)
        p = as_json("portfolio", env=other)
        assert (p["eth"], p["usdc"]) == (2.0, 1234.5)
    finally:
        trader("chain", "down", env=other)


@pytest.mark.parametrize("answer,why", [("n", "declined at the prompt"), ("\x03", "interrupted at the prompt")])
def test_a_proposal_the_user_says_no_to_is_journalled_declined(chain, trader_funded, chain_home, answer, why):
    """`n` or Ctrl+C at the confirmation prompt: nothing signed, one error line, the row `declined` (it used to
    stay `proposed` forever)."""
    pexpect = pytest.importorskip("pexpect")
    from onchain.execution.journal import Journal

    n0 = int(chain.rpc("eth_getTransactionCount", trader_funded, "latest"), 16)
    # Ctrl+C as at a terminal: a test run started in the background (`cmd &`, nohup) ignores SIGINT, and a child
    # would inherit that and wait at the prompt forever
    child = pexpect.spawn(sys.executable, ["-c", RUN_TRADER, "swap", "sell", "0.02", "ETH"], encoding="utf-8",
                          timeout=HANG_S, env={**os.environ, "TRADER_HOME": str(chain_home)},
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    child.expect(r"execute on chain id 1 .*\? \[y/N\]: ")
    child.send(answer if answer == "\x03" else answer + "\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert f"error: not executed ({why})" in child.before and "Traceback" not in child.before
    newest = Journal().list_trades(limit=1)[0]
    assert newest["status"] == "declined" and newest["reason"] == why and newest["amount_in"] == 0.02
    assert int(chain.rpc("eth_getTransactionCount", trader_funded, "latest"), 16) == n0
