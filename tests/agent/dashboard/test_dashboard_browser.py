"""`trader dashboard` in a real browser: Debian's chromium, headless, driven by Playwright, on the session's replica
chain. Tools, chain, policy and journal are real; only the chat model's choices are scripted (tests/agent).

DASHBOARD_SCREENSHOT=docs/dashboard.png saves the page as the test leaves it (the README's picture);
DASHBOARD_RUN=FOLDER shows that `trader run --learn` folder in the learner panel instead of a written one.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.agent.conftest import journal_rows, scripted
from tests.agent.dashboard.test_dashboard import write_learning_run

pytestmark = [pytest.mark.chain, pytest.mark.slow]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium); the dashboard's browser tests need it")
    return path


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_dashboard_in_a_browser_trades_only_from_the_confirm_button(chain_home, browser, tmp_path):
    import httpx

    from agent.dashboard.app import DashboardConfig, create_app, running
    from onchain.api import connect, get_portfolio, get_price

    chat = scripted({"intent": "price"}, "ETH trades at the pool's price.",
                    {"intent": "propose", "side": "sell", "amount": 0.1, "asset": "ETH"}, "Here is the proposal.")
    run = os.environ.get("DASHBOARD_RUN") or str(write_learning_run(tmp_path / "learn1"))
    app = create_app(DashboardConfig(port=0, router="model", run=run), chat=chat, label="scripted")
    before = get_portfolio(connect())
    with running(app) as url:
        page = browser.new_page(viewport={"width": 1500, "height": 1250})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page
        # waits are functions, not expression strings: Playwright polls an expression with eval, which the page's
        # Content-Security-Policy (no 'unsafe-eval') rightly blocks

        # price and portfolio, from the chain
        price = get_price(connect()).price
        page.wait_for_function("() => document.querySelector('#price').textContent !== '–'", timeout=60_000)
        shown = float(page.text_content("#price").replace(",", ""))
        assert shown == pytest.approx(price, rel=1e-3)
        assert "USDC" in page.text_content("#portfolio") and "value" in page.text_content("#portfolio")
        points = int(page.get_attribute("#equity-chart", "data-points"))
        fills = int(page.get_attribute("#equity-chart", "data-fills") or 0)

        # a question gets an answer and no proposal
        page.fill("#chat-input", "what is the ETH price?")
        page.click("#chat-send")
        page.wait_for_selector(".msg.agent", timeout=60_000)
        assert page.text_content(".msg.agent").strip()
        assert page.locator(".proposal-card").count() == 0

        # an order shows a card; nothing is sent until its button is pressed
        page.fill("#chat-input", "sell 0.1 ETH")
        page.click("#chat-send")
        card = page.wait_for_selector(".proposal-card", timeout=60_000)
        pid = card.get_attribute("data-proposal")
        assert "sell 0.1 ETH" in card.text_content()
        row = next(r for r in journal_rows() if r["id"] == pid)
        assert row["status"] == "proposed" and row["tx_hash"] is None

        # without the token the same request is refused, from the page itself
        status = page.evaluate("""async (pid) => (await fetch('/api/confirm', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify({proposal_id: pid})})).status""", pid)
        assert status == 403
        assert next(r for r in journal_rows() if r["id"] == pid)["status"] == "proposed"
        # with the token but from a foreign origin: refused too
        foreign = httpx.post(url + "api/confirm", json={"proposal_id": pid},
                             headers={"X-Trader-Token": app.state.guard.token, "Origin": "http://evil.example"})
        assert foreign.status_code == 403

        page.click(f".proposal-card[data-proposal='{pid}'] button.confirm")
        page.wait_for_selector(f".proposal-card[data-proposal='{pid}'][data-result='confirmed']", timeout=90_000)
        row = next(r for r in journal_rows() if r["id"] == pid)
        assert row["status"] == "confirmed" and row["tx_hash"].startswith("0x")
        after = get_portfolio(connect())
        assert after.usdc - before.usdc == pytest.approx(row["amount_out"], rel=1e-6)

        # the journal row and the equity point arrive by polling, without a reload
        page.wait_for_selector(f"#journal tr[data-id='{pid}'][data-status='confirmed']", timeout=30_000)
        assert row["tx_hash"][:12] in page.text_content(f"#journal tr[data-id='{pid}']")
        page.wait_for_function(f"() => Number(document.querySelector('#equity-chart').dataset.fills) > {fills}",
                               timeout=30_000)
        assert int(page.get_attribute("#equity-chart", "data-points")) >= points + 2  # before and after the fill
        assert page.evaluate("window.__sameDocument === true")

        # the live signal (the bundled policy on the chain's bars) and its vote
        page.wait_for_selector("#signal-action", timeout=180_000)
        assert re.fullmatch(r"BUY|SELL|HOLD", page.text_content("#signal-action"))
        page.click("#refresh-signal")  # the chart loaded before the swap; the 30 s refresh would come later
        page.wait_for_function("() => /; [1-9]\\d* of our fills marked/.test(document.querySelector('#price-source')"
                               ".textContent)", timeout=120_000)  # our sell is marked on the pool's price chart
        page.wait_for_selector("#trials tr:nth-child(2)", timeout=30_000)  # the recipe search panel
        page.wait_for_function("() => document.querySelector('#learner').textContent.includes('promotions')",
                               timeout=30_000)  # the online learner panel
        if not os.environ.get("DASHBOARD_RUN"):
            assert "1 promotions, 1 rollbacks" in page.text_content("#learner")
            assert page.locator("#gate-events tr").count() == 3

        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        if os.environ.get("DASHBOARD_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["DASHBOARD_SCREENSHOT"])
        assert not errors, errors
        page.close()
