"""Guards: bad input, slippage and deadline reverts, risk limits, non-local chains, keys. Nothing is signed
when a guard refuses, and every outcome lands in the journal."""

from __future__ import annotations

import json
import urllib.request

import pytest

from onchain.node import chain as C
from onchain.manage import fund
from onchain.node.transactions import send_as
from onchain.node.rpc import calldata
from onchain.execution.swap import RiskLimits, execute_swap, propose_swap
from tests.onchain.conftest import JsonHandler, nonce, serving
from trader_core.errors import ChainError, ConfigError, SwapRefused, TransactionFailed

pytestmark = pytest.mark.chain


@pytest.mark.parametrize("side,amount,asset,venue", [
    ("sell", 0, "ETH", "v2"), ("sell", -1, "ETH", "v2"), ("sell", float("nan"), "ETH", "v2"),
    ("sell", float("inf"), "ETH", "v2"), ("sell", "abc", "ETH", "v2"), ("sell", "1e-30", "ETH", "v2"),
    ("sell", 1, "DOGE", "v2"), ("sell", 1, "", "v3"), ("hold", 1, "ETH", "v2"), ("sell", 1, "ETH", "v4"),
])
def test_bad_orders_refused_before_any_transaction(chain, trader, journal, side, amount, asset, venue):
    n0 = nonce(chain, trader)
    with pytest.raises(SwapRefused) as err:
        propose_swap(chain, side, amount, asset, venue, journal=journal)
    assert "\n" not in str(err.value)
    assert nonce(chain, trader) == n0
    assert journal.list_trades() == []


@pytest.mark.parametrize("bps,deadline", [(0, 120), (9000, 120), (50, 0), (50, -5), (50, float("nan"))])
def test_bad_slippage_or_deadline_refused(chain, trader, journal, bps, deadline):
    with pytest.raises(SwapRefused):
        propose_swap(chain, "sell", 1, "ETH", "v2", max_slippage_bps=bps, deadline_s=deadline, journal=journal)


def _whale_sell(chain, eth: float) -> None:
    """Another trader moves the V2 price between our proposal and its execution."""
    whale = C.dev_account(1).address
    chain.rpc("anvil_setBalance", whale, hex(10**24))
    deadline = chain.block_timestamp() + 600
    data = calldata("swapExactETHForTokens(uint256,address[],address,uint256)", 0, [C.WETH, C.USDC], whale, deadline)
    send_as(chain, whale, C.V2_ROUTER, data, value=int(eth * 10**18), gas=300_000)  # raises if it reverts


def test_slippage_bound_is_a_clear_error_and_a_failed_row(chain, trader, journal):
    proposal = propose_swap(chain, "sell", 1, "ETH", "v2", max_slippage_bps=10, journal=journal)
    _whale_sell(chain, 300)
    n0 = nonce(chain, trader)
    with pytest.raises(TransactionFailed, match="slippage") as err:
        execute_swap(chain, proposal, journal)
    assert "INSUFFICIENT_OUTPUT_AMOUNT" in str(err.value) and "nothing sent" in str(err.value)
    assert nonce(chain, trader) == n0
    row = journal.get(proposal.id)
    assert row["status"] == "failed" and "slippage" in row["reason"]
    with pytest.raises(SwapRefused, match="already executed"):
        execute_swap(chain, proposal, journal)


def test_usdc_swap_that_would_revert_sends_not_even_the_approval(chain, trader, journal):
    proposal = propose_swap(chain, "buy", 2000, "USDC", "v2", max_slippage_bps=10, journal=journal)
    assert proposal.needs_approval
    whale = C.dev_account(1).address
    fund(chain, whale, eth=10, usdc=2_000_000)
    send_as(chain, whale, C.USDC, calldata("approve(address,uint256)", C.V2_ROUTER, 10**12))
    send_as(chain, whale, C.V2_ROUTER, calldata("swapExactTokensForETH(uint256,uint256,address[],address,uint256)",
                                                10**12, 0, [C.USDC, C.WETH], whale, chain.block_timestamp() + 600))
    n0 = nonce(chain, trader)
    with pytest.raises(TransactionFailed, match="nothing sent"):
        execute_swap(chain, proposal, journal)
    assert nonce(chain, trader) == n0
    allowance = chain.call(C.USDC, calldata("allowance(address,address)", trader, C.V2_ROUTER))
    assert int(allowance, 16) == 0


def test_slippage_revert_mined_on_chain_is_journalled_reverted(chain, trader, journal):
    proposal = propose_swap(chain, "sell", 1, "ETH", "v2", max_slippage_bps=10, journal=journal)
    _whale_sell(chain, 300)
    with pytest.raises(TransactionFailed, match="reverted in block"):
        execute_swap(chain, proposal, journal, simulate=False)  # skip eth_call: let the router revert on chain
    row = journal.get(proposal.id)
    assert row["status"] == "reverted" and "INSUFFICIENT_OUTPUT_AMOUNT" in row["reason"]
    receipt = chain.rpc("eth_getTransactionReceipt", row["tx_hash"])
    assert int(receipt["status"], 16) == 0


@pytest.mark.parametrize("venue,needle", [("v2", "EXPIRED"), ("v3", "Transaction too old")])
def test_deadline_revert_is_a_clear_error_and_a_failed_row(chain, trader, journal, venue, needle):
    proposal = propose_swap(chain, "sell", 0.5, "ETH", venue, deadline_s=5, journal=journal)
    chain.rpc("evm_increaseTime", 60)
    chain.rpc("evm_mine")
    with pytest.raises(TransactionFailed, match="deadline passed") as err:
        execute_swap(chain, proposal, journal)
    assert needle in str(err.value)
    assert journal.get(proposal.id)["status"] == "failed"


def test_max_notional_and_portfolio_fraction(chain, trader, journal):
    p = propose_swap(chain, "sell", 1, "ETH", "v2", risk=RiskLimits(max_notional_usd=100), journal=journal)
    assert not p.risk.ok and "max_notional_usd" in p.risk.reasons[0]
    assert journal.get(p.id)["status"] == "refused"
    n0 = nonce(chain, trader)
    with pytest.raises(SwapRefused, match="max_notional_usd"):
        execute_swap(chain, p, journal)
    assert nonce(chain, trader) == n0
    p = propose_swap(chain, "sell", 30, "ETH", "v2", risk=RiskLimits(max_notional_usd=1e9,
                                                                      max_portfolio_fraction=0.1), journal=journal)
    assert not p.risk.ok and "of the portfolio" in " ".join(p.risk.reasons)


def test_insufficient_balance_refused(chain, trader, journal):
    fund(chain, trader, usdc=10.0)
    p = propose_swap(chain, "buy", 500, "USDC", "v2", journal=journal)
    assert not p.risk.ok and "insufficient USDC" in p.risk.reasons[0]
    assert p.gas_estimate is None  # nothing simulated or signed for a refused trade


def test_daily_loss_kill_switch_marks_todays_swaps_to_market(chain, trader, journal):
    from onchain.execution.risk import mark_to_market_loss

    risk = RiskLimits(daily_loss_limit_usd=0.5)
    first = propose_swap(chain, "sell", 1, "ETH", "v2", risk=risk, journal=journal)
    assert first.risk.ok
    receipt = execute_swap(chain, first, journal)
    flows = journal.flows_today(trader, chain.node_id)
    assert [r["id"] for r in flows] == [first.id]
    spot = first.quote.spot_price
    lost = mark_to_market_loss(flows, spot)
    # 1 ETH out, the fill in, gas: about the 0.3% fee plus impact on ~2300 USD
    assert lost == pytest.approx(spot - receipt.amount_out + receipt.gas_cost_eth * spot, rel=1e-9)
    assert lost > 0.5
    second = propose_swap(chain, "sell", 0.1, "ETH", "v2", risk=risk, journal=journal)
    assert not second.risk.ok and "kill switch" in second.risk.reasons[0]
    # another account's or another node's swaps never count toward this one
    assert journal.flows_today(C.dev_account(5).address, chain.node_id) == []
    assert journal.flows_today(trader, "1:0xother:fork") == []


def test_kill_switch_counts_pending_swaps_at_their_minimum_once(chain, trader, journal):
    from onchain.execution.risk import mark_to_market_loss

    p = propose_swap(chain, "sell", 2, "ETH", "v2", max_slippage_bps=500, journal=journal)
    journal.transition(p.id, "proposed", status="pending", tx_hash="0x" + "ab" * 32)  # sent, receipt not yet seen
    flows = journal.flows_today(trader, chain.node_id)
    assert len(flows) == 1 and flows[0]["status"] == "pending"
    spot = p.quote.spot_price
    assert mark_to_market_loss(flows, spot) == pytest.approx(2 * spot - p.min_amount_out)  # the worst fill
    risk = RiskLimits(daily_loss_limit_usd=2 * spot - p.min_amount_out - 1)
    assert "kill switch" in " ".join(propose_swap(chain, "sell", 0.1, "ETH", "v2", risk=risk,
                                                  journal=journal).risk.reasons)
    # a second row can never claim the same transaction: one swap is never counted twice
    q = propose_swap(chain, "sell", 0.1, "ETH", "v2", journal=journal)
    from onchain.execution.journal import JournalError

    with pytest.raises(JournalError):
        journal.transition(q.id, "proposed", status="pending", tx_hash="0x" + "ab" * 32)


def test_balance_guard_counts_gas_on_eth_sells(chain, trader, journal):
    fund(chain, trader, eth=1.0)
    whole = propose_swap(chain, "sell", 1.0, "ETH", "v2", journal=journal)
    assert not whole.risk.ok and "insufficient ETH for the swap and its gas" in whole.risk.reasons[0]
    assert journal.get(whole.id)["status"] == "refused"
    almost = propose_swap(chain, "sell", 0.99, "ETH", "v2", journal=journal)
    assert almost.risk.ok
    assert execute_swap(chain, almost, journal).status == "confirmed"


def test_risk_limits_from_env(chain, trader, journal, monkeypatch):
    from onchain.execution.swap import load_risk_limits

    monkeypatch.setenv("TRADER_RISK_MAX_NOTIONAL_USD", "50")
    assert load_risk_limits().max_notional_usd == 50
    monkeypatch.setenv("TRADER_RISK_MAX_NOTIONAL_USD", "lots")
    with pytest.raises(ConfigError, match="max_notional_usd"):
        load_risk_limits()


class _LiveLookingProxy(JsonHandler):
    """Forwards JSON-RPC to the real anvil but presents itself as a geth mainnet node."""

    upstream = ""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if isinstance(body, dict) and body.get("method") == "web3_clientVersion":
            reply = {"jsonrpc": "2.0", "id": body["id"], "result": "Geth/v1.14.11-stable/linux-amd64/go1.22.2"}
        else:
            req = urllib.request.Request(self.upstream, json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            reply = json.loads(urllib.request.urlopen(req, timeout=60).read())  # guards a hang only
        self.reply(json.dumps(reply).encode())


@pytest.fixture
def live_chain(chain):
    handler = type("H", (_LiveLookingProxy,), {"upstream": chain.rpc_url})
    with serving(handler) as port:
        yield C.connect(f"http://127.0.0.1:{port}")


def test_refuses_to_sign_on_a_non_local_chain(live_chain, trader, journal, monkeypatch):
    assert live_chain.chain_id == 1 and not live_chain.local
    n0 = nonce(live_chain, trader)
    with pytest.raises(SwapRefused, match="not a local anvil node.*--allow-live.*chain id 1"):
        propose_swap(live_chain, "sell", 0.1, "ETH", "v2", journal=journal)
    with pytest.raises(SwapRefused, match="dev keys are only used on a local node"):
        propose_swap(live_chain, "sell", 0.1, "ETH", "v2", journal=journal, allow_live=True)
    with pytest.raises(ChainError, match="only a local anvil"):
        fund(live_chain, trader, eth=1)
    assert nonce(live_chain, trader) == n0 and journal.list_trades() == []


def test_private_key_from_env_is_used_and_never_echoed(chain, journal, monkeypatch):
    bad = "0x" + "zz" * 32
    monkeypatch.setenv("TRADER_PRIVATE_KEY", bad)
    with pytest.raises(ConfigError) as err:
        propose_swap(chain, "sell", 0.1, "ETH", "v2", journal=journal)
    assert bad not in str(err.value) and "zz" not in str(err.value)
    other = C.dev_account(2)
    monkeypatch.setenv("TRADER_PRIVATE_KEY", other.key.hex())
    fund(chain, other.address, eth=10)
    receipt = execute_swap(chain, propose_swap(chain, "sell", 0.1, "ETH", "v2", journal=journal), journal)
    assert receipt.status == "confirmed"
    assert journal.get(receipt.id)["account"] == other.address
    assert other.key.hex()[2:] not in json.dumps(journal.list_trades())
