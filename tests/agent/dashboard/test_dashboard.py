"""`trader dashboard` over real HTTP (uvicorn on a pre-bound free port) on the session's replica chain: who may call
what, that no secret reaches a response, and the panels' views of real journals, runs and searches."""

from __future__ import annotations

import json

import pytest

from tests.agent.conftest import scripted

pytestmark = pytest.mark.chain

RANDOM_KEY = "0x" + "5c" * 31 + "01"  # not a dev account's: a stand-in for a user's real key


def _serve(cfg=None, chat=None):
    from agent.dashboard.app import DashboardConfig, create_app, running

    app = create_app(cfg or DashboardConfig(port=0, router="model"), chat=chat, label="scripted")
    return app, running(app)


def _token(app) -> str:
    return app.state.guard.token


def test_state_changing_requests_need_the_token_and_this_origin(chain_home):
    import httpx

    app, server = _serve(chat=scripted({"intent": "price"}, "The pool price."))
    with server as url:
        token, port = _token(app), url.rsplit(":", 1)[1].strip("/")
        page = httpx.get(url)
        assert page.status_code == 200 and f'content="{token}"' in page.text
        assert page.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in \
            page.headers["content-security-policy"]
        body = {"message": "what is the ETH price?"}
        for headers in ({}, {"X-Trader-Token": "wrong"}, {"X-Trader-Token": token, "Origin": "http://evil.example"},
                        {"X-Trader-Token": token, "Origin": "null"},
                        {"X-Trader-Token": token, "Origin": f"http://localhost:{int(port) + 1}"}):
            r = httpx.post(url + "api/chat", json=body, headers=headers)
            assert r.status_code == 403, (headers, r.text)
            assert "refused" in r.json()["error"]
        for path in ("api/confirm", "api/decline"):
            assert httpx.post(url + path, json={"proposal_id": "x"}).status_code == 403
        # DNS rebinding: a foreign name pointed at 127.0.0.1 sends its own Host; refused before the page (and token)
        assert httpx.get(url, headers={"Host": f"evil.example:{port}"}).status_code == 403
        # the real thing passes: this server's origin and the token
        ok = httpx.post(url + "api/chat", json=body, headers={"X-Trader-Token": token, "Origin": url.rstrip("/")},
                        timeout=60)
        assert ok.status_code == 200, ok.text
        assert ok.json()["proposal"] is None and [t["name"] for t in ok.json()["tools"]] == ["get_price"]


def test_no_secret_reaches_the_page_or_any_response(chain_home, monkeypatch):
    """A private key in the environment and an RPC URL with credentials: neither appears in anything served."""
    import httpx

    from agent.dashboard.app import DashboardConfig
    from onchain.node.chain import read_state

    monkeypatch.setenv("TRADER_PRIVATE_KEY", RANDOM_KEY)
    monkeypatch.setenv("TRADER_ALLOW_REAL_KEY_ON_LOCAL", "1")
    anvil = read_state().rpc_url
    secret_url = anvil.replace("://", "://alice:s3cretpass@")
    cfg = DashboardConfig(port=0, rpc_url=secret_url, router="model")
    app, server = _serve(cfg, chat=scripted({"intent": "portfolio"}, "Your wallet.",
                                            {"intent": "propose", "side": "sell", "amount": 0.1, "asset": "ETH"},
                                            "Proposed."))
    with server as url:
        headers = {"X-Trader-Token": _token(app), "Origin": url.rstrip("/")}
        seen = [httpx.get(url).text]
        for path in ("api/state", "api/signal", "api/learner", "api/search", "static/app.js"):
            r = httpx.get(url + path, timeout=120)
            assert r.status_code == 200, (path, r.text)
            seen.append(r.text)
        state = json.loads(seen[1])
        assert state["chain"] and state["portfolio"]["usdc"] == 0.0  # the key's own (empty) wallet was read
        for message in ("what is in my wallet", "sell 0.1 ETH"):
            seen.append(httpx.post(url + "api/chat", json={"message": message}, headers=headers, timeout=120).text)
    served = "\n".join(seen)
    assert RANDOM_KEY[2:].lower() not in served.lower() and "s3cretpass" not in served and "alice" not in served
    assert anvil not in served  # not even the plain RPC address


def write_learning_run(run):
    """A `trader run --learn` folder as the real serving functions leave it: a refused candidate, a promotion, a
    rollback, and a decisions.jsonl whose last line is still being written."""
    from rl.online.serving import append_promotion, promote, rollback

    (run / "learn" / "candidates").mkdir(parents=True)
    ckpt = run / "learn" / "candidates" / "step_500.pt"
    ckpt.write_bytes(b"")
    append_promotion(run, {"kind": "gate", "time": 1.0, "step": 250, "candidate": "learn/candidates/step_250.pt",
                           "promoted": False, "reasons": ["Sharpe -1.00 trails the incumbent's 0.50 by more than 0.5"],
                           "window": {}, "candidate_metrics": {"sharpe": -1.0}, "incumbent_metrics": {"sharpe": 0.5}})
    promote(run, ckpt, 500)
    append_promotion(run, {"kind": "gate", "time": 2.0, "step": 500, "candidate": "learn/candidates/step_500.pt",
                           "promoted": True, "reasons": [], "window": {}})
    rollback(run)
    (run / "decisions.jsonl").write_text(json.dumps({"tick": 0, "bar_time": 3600, "price": 2000.0, "action": "BUY",
                                                     "status": "paper", "decided_by": "rl"}) + "\n{half a line")
    return run


def test_learner_panel_reads_a_learning_run_written_by_the_real_serving_functions(tmp_path):
    from agent.dashboard.insights import learner_view

    run = write_learning_run(tmp_path / "learn1")
    v = learner_view(run)
    assert v.available and v.promotions == 1 and v.rollbacks == 1
    assert v.serving.current.kind == "incumbent" and v.serving.version == 2  # promoted, then rolled back
    assert [e.kind for e in v.events] == ["gate", "gate", "rollback"]
    assert v.events[0].summary.startswith("kept the serving policy: Sharpe -1.00")
    assert [d.action for d in v.decisions] == ["BUY"]  # the line being written is skipped
    missing = learner_view(tmp_path / "nothing")
    assert not missing.available and "holds no run yet" in missing.message


def test_search_panel_shows_the_bundled_search_best_first():
    from agent.dashboard.insights import DEFAULT_SEARCH, search_view

    v = search_view()
    report = json.loads((DEFAULT_SEARCH / "report.json").read_text())
    assert v.available and v.best["number"] == report["best"]["number"]
    scores = [t.value for t in v.top if t.value is not None]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(report["best"]["value"])
    assert len(v.folds) == len(report["folds"]) + len(report["holdout"]) and v.folds[0]["policy"] is not None


def test_equity_curve_replays_fills_backward_and_prices_their_costs():
    """One sell of 1 ETH at a 2,000 mid: quoted 1,990, received 1,985, gas 0.001 ETH, V2's 30 bps fee."""
    from agent.dashboard.ledger import equity_curve, fill_cost

    row = {"id": "a" * 16, "created_at": 100.0, "updated_at": 101.0, "status": "confirmed", "side": "sell",
           "venue": "v2", "asset_in": "ETH", "asset_out": "USDC", "amount_in": 1.0, "quoted_out": 1990.0,
           "amount_out": 1985.0, "spot_price": 2000.0, "gas_cost_eth": 0.001}
    cost = fill_cost(row, 30.0)
    assert cost.fee_usd == pytest.approx(6.0) and cost.slippage_usd == pytest.approx(5.0)
    assert cost.gas_usd == pytest.approx(2.0) and cost.impact_usd == pytest.approx(15.0 - 6.0 - 5.0)
    # now: 9 ETH (after the sale and the gas: 10 - 1 - 0.001 = 8.999) and 1,985 USDC, price 2,100
    curve = equity_curve([row], eth=8.999, usdc=1985.0, price=2100.0, now=200.0, fee_bps={"v2": 30.0})
    before, after, now = curve.points
    assert before.equity_usd == pytest.approx(10 * 2000.0) and after.equity_usd == pytest.approx(8.999 * 2000 + 1985)
    assert before.equity_usd - after.equity_usd == pytest.approx(cost.total)  # the step is what the fill cost
    assert now.equity_usd == pytest.approx(8.999 * 2100 + 1985) and now.costs_usd == pytest.approx(cost.total)
    assert curve.fills == 1 and before.time < after.time == 101.0 < now.time


def test_dashboard_command_is_registered_and_bad_options_are_one_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "from agent.cli import main; main()", "dashboard", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--port" in out.stdout and "--host" in out.stdout
    bad = subprocess.run([sys.executable, "-c", "from agent.cli import main; main()", "dashboard", "--port", "70000"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("error: invalid setting 'port'")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_typed_yes_or_a_declined_card_never_executes(chain_home):
    """Only the card's confirm button executes: a typed "yes" does not, a declined proposal stays declined, an id
    that this chat never proposed is refused."""
    import httpx

    from onchain.api import connect, get_portfolio
    from tests.agent.conftest import journal_rows

    before = get_portfolio(connect())
    app, server = _serve(chat=scripted({"intent": "propose", "side": "sell", "amount": 0.1, "asset": "ETH"},
                                       "Proposed.", {"intent": "execute"}, "Executing."))
    with server as url:
        headers = {"X-Trader-Token": _token(app), "Origin": url.rstrip("/")}
        turn = httpx.post(url + "api/chat", json={"message": "sell 0.1 ETH"}, headers=headers, timeout=120).json()
        pid = turn["proposal"]["id"]
        yes = httpx.post(url + "api/chat", json={"message": "yes, execute it"}, headers=headers, timeout=120).json()
        assert [t["name"] for t in yes["tools"]] == ["execute_swap"] and "error" in yes["tools"][0]["result"]
        assert next(r for r in journal_rows() if r["id"] == pid)["status"] == "proposed"
        declined = httpx.post(url + "api/decline", json={"proposal_id": pid}, headers=headers).json()
        assert declined["ok"] and next(r for r in journal_rows() if r["id"] == pid)["status"] == "declined"
        again = httpx.post(url + "api/confirm", json={"proposal_id": pid}, headers=headers, timeout=120).json()
        assert not again["ok"] and "declined" in again["message"]
        unknown = httpx.post(url + "api/confirm", json={"proposal_id": "deadbeefdeadbeef"}, headers=headers).json()
        assert not unknown["ok"] and "nothing was sent" in unknown["message"]
    row = next(r for r in journal_rows() if r["id"] == pid)
    assert row["tx_hash"] is None and get_portfolio(connect()).usdc == before.usdc


@pytest.mark.llm
def test_the_trader_models_explanation_comes_on_demand(chain_home):
    """The signal panel's button: the trader model (here the real SmolLM2 GGUF) asked about the policy's view."""
    import httpx

    from agent.dashboard.app import DashboardConfig
    from finetune.llm_backends.chat_models import smollm2_path

    cfg = DashboardConfig(port=0, trader_llm=f"gguf:{smollm2_path()}")
    app, server = _serve(cfg)
    with server as url:
        assert httpx.post(url + "api/explain").status_code == 403  # it loads a model: not for anyone
        r = httpx.post(url + "api/explain", headers={"X-Trader-Token": _token(app), "Origin": url.rstrip("/")},
                       timeout=300)
    body = r.json()
    assert r.status_code == 200 and "error" not in body, body
    assert body["answer"].strip() and body["action"] in ("BUY", "SELL", "HOLD", "UNKNOWN")
    assert "SmolLM2" in body["model"] or "smollm" in body["model"].lower()
    assert "bar of" in body["bar"]  # it names the bar its numbers describe
