"""Guarded swaps: propose (quote, guards, risk, gas estimate; signs nothing) then execute (simulate, sign
locally, send, wait, decode the Swap event). Every step is journalled before it can be lost.

Exact-input only: `sell X ETH` spends X ETH; `buy X ETH` solves the USDC input for ~X ETH and spends that.
V4 (Base) goes through the Universal Router; its USDC input is authorised by a Permit2 permit signed at execution
(onchain.v4_swap), the ERC-20 approval going to Permit2 instead of the router.
"""

from __future__ import annotations

import math
import os
import time
import uuid

from eth_utils import keccak
from pydantic import BaseModel, Field

from onchain import chain as C
from onchain import v4_swap
from onchain.journal import Journal, default_journal
from onchain.models import Quote, RiskVerdict, SwapProposal, SwapReceipt
from onchain.networks import PERMIT2, network_of
from onchain.replica import wait_receipt
from onchain.rpc import RpcError, calldata, decode, mapping_slot, word
from onchain.uniswap import FEE_BPS, V2_SWAP_TOPIC, V3_SWAP_TOPIC, from_raw, get_quote, parse_order
from trader_core.errors import ChainUnavailable, ConfigError, SwapRefused, TransactionFailed

GAS_HEADROOM = 1.5  # a bare estimate failed ~3% of V2 swaps on anvil (block timestamp race)
_V3_EXACT_IN = "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))"


class RiskLimits(BaseModel):
    """Risk limits checked before anything is signed (env TRADER_RISK_*, a config file, or flags)."""

    max_notional_usd: float = Field(25_000.0, gt=0, description="largest single trade, in USD")
    max_portfolio_fraction: float = Field(0.5, gt=0, le=1, description="largest trade as a share of the portfolio")
    daily_loss_limit_usd: float = Field(1_000.0, ge=0, description="kill switch: realised loss since 00:00 UTC")


def load_risk_limits(file: str | None = None, **overrides) -> RiskLimits:
    from trader_core.config import resolve_config

    return resolve_config(RiskLimits, overrides, file, env_prefix="TRADER_RISK_")


def signer(chain: C.Chain, allow_live: bool = False):
    """TRADER_PRIVATE_KEY if set, else anvil's dev account 0 — the latter only on a local node. Never logged."""
    key = os.environ.get("TRADER_PRIVATE_KEY")
    if key:
        from eth_account import Account

        try:
            return Account.from_key(key.strip())
        except Exception:  # the message must not echo the key
            raise ConfigError("TRADER_PRIVATE_KEY is not a valid 32-byte hex private key") from None
    if not chain.local:
        raise SwapRefused(f"no key for {chain.describe()}: anvil dev keys are only used on a local node; "
                          "set TRADER_PRIVATE_KEY")
    return C.dev_account(C.TRADER_ACCOUNT)


def check_chain(chain: C.Chain, allow_live: bool) -> None:
    if not chain.local and not allow_live:
        raise SwapRefused(f"refusing to sign on {chain.describe()}: it is not a local anvil node; "
                          f"pass --allow-live to trade for real on chain id {chain.chain_id}")


def _router_call(q: Quote, min_out_raw: int, account: str, deadline: int) -> tuple[str, str, int]:
    """(to, data, value) for an exact-input swap; ETH legs are wrapped/unwrapped by the routers (not on V4)."""
    if q.venue == "v4":
        return v4_swap.router_call(q, min_out_raw, deadline)
    if q.venue == "v2":
        if q.side == "sell":
            data = calldata("swapExactETHForTokens(uint256,address[],address,uint256)",
                            min_out_raw, [C.WETH, C.USDC], account, deadline)
            return C.V2_ROUTER, data, q.amount_in_raw
        data = calldata("swapExactTokensForETH(uint256,uint256,address[],address,uint256)",
                        q.amount_in_raw, min_out_raw, [C.USDC, C.WETH], account, deadline)
        return C.V2_ROUTER, data, 0
    if q.side == "sell":
        params = (C.WETH, C.USDC, C.V3_FEE, account, deadline, q.amount_in_raw, min_out_raw, 0)
        return C.V3_ROUTER, calldata(_V3_EXACT_IN, params), q.amount_in_raw
    # USDC -> WETH to the router, then unwrap to the trader (SwapRouter v1 has no ADDRESS_THIS shortcut)
    swap = calldata(_V3_EXACT_IN, (C.USDC, C.WETH, C.V3_FEE, C.V3_ROUTER, deadline, q.amount_in_raw, min_out_raw, 0))
    unwrap = calldata("unwrapWETH9(uint256,address)", min_out_raw, account)
    return C.V3_ROUTER, calldata("multicall(bytes[])", [bytes.fromhex(swap[2:]), bytes.fromhex(unwrap[2:])]), 0


def _allowance_override(owner: str, spender: str, amount: int) -> dict:
    """eth_call/estimateGas state override granting the allowance the real approve() will give."""
    inner = mapping_slot(owner, C.USDC_ALLOWANCE_SLOT)
    slot = "0x" + keccak(bytes.fromhex(spender[2:].rjust(64, "0")) + bytes.fromhex(inner[2:])).hex()
    return {C.USDC: {"stateDiff": {slot: word(amount)}}}


def propose_swap(chain: C.Chain, side: str, amount: float, asset: str = "ETH", venue: str | None = None,
                 max_slippage_bps: int = 50, deadline_s: int = 120, risk: RiskLimits | None = None,
                 journal: Journal | None = None, allow_live: bool = False) -> SwapProposal:
    """Quote + every guard + gas estimate. Bad input, a non-local chain or a missing key raise SwapRefused;
    risk and balance problems come back as `risk.ok=False` with reasons (journalled `refused`)."""
    side, amount, asset, venue = parse_order(side, amount, asset, venue)
    net = network_of(chain)
    venue = net.venue(venue)
    if not (isinstance(max_slippage_bps, int) and 0 < max_slippage_bps <= 5_000):
        raise SwapRefused(f"max slippage must be 1..5000 bps, got {max_slippage_bps!r}")
    if not (isinstance(deadline_s, (int, float)) and math.isfinite(deadline_s) and 0 < deadline_s <= 86_400):
        raise SwapRefused(f"deadline must be 1..86400 seconds, got {deadline_s!r}")
    check_chain(chain, allow_live)
    account = signer(chain, allow_live).address
    risk = risk or load_risk_limits()
    journal = journal or default_journal()

    q = get_quote(chain, side, amount, asset, venue)
    # who must hold the USDC allowance: the router, or Permit2 on V4 (which then allows the router per swap)
    router = {"v2": C.V2_ROUTER, "v3": C.V3_ROUTER, "v4": PERMIT2}[venue]
    bal = calldata("balanceOf(address)", account)
    eth_raw, usdc_raw, allowance, block, *permit2 = chain.rpc.batch([
        ("eth_getBalance", [account, "latest"]),
        ("eth_call", [{"to": net.usdc, "data": bal}, "latest"]),
        ("eth_call", [{"to": net.usdc, "data": calldata("allowance(address,address)", account, router)}, "latest"]),
        ("eth_getBlockByNumber", ["latest", False]),
    ] + ([v4_swap.permit2_allowance_call(account)] if venue == "v4" and q.asset_in == "USDC" else []))
    eth_bal, usdc_bal = int(eth_raw, 16) / 1e18, int(usdc_raw, 16) / 1e6
    # anvil stamps the next block with the wall clock even when `latest` is an old (loaded/forked) block
    deadline = max(int(block["timestamp"], 16), int(time.time())) + int(deadline_s)
    min_out_raw = q.amount_out_raw * (10_000 - max_slippage_bps) // 10_000
    if min_out_raw <= 0:  # a zero minimum would accept any price
        raise SwapRefused(f"{q.amount_in:.6g} {q.asset_in} is too small: the minimum output after "
                          f"{max_slippage_bps} bps slippage rounds to 0 {q.asset_out}; trade a larger amount")
    to, data, value = _router_call(q, min_out_raw, account, deadline)
    needs_approval = q.asset_in == "USDC" and int(allowance, 16) < q.amount_in_raw

    notional = q.amount_in * q.spot_price if q.asset_in == "ETH" else q.amount_in
    portfolio_usd = eth_bal * q.spot_price + usdc_bal
    reasons = []
    have = eth_bal if q.asset_in == "ETH" else usdc_bal
    if have < q.amount_in:
        reasons.append(f"insufficient {q.asset_in}: need {q.amount_in:.6g}, have {have:.6g}")
    if notional > risk.max_notional_usd:
        reasons.append(f"notional {notional:,.2f} USD exceeds max_notional_usd {risk.max_notional_usd:,.2f}")
    if portfolio_usd > 0 and notional / portfolio_usd > risk.max_portfolio_fraction:
        reasons.append(f"trade is {notional / portfolio_usd:.1%} of the portfolio "
                       f"(max_portfolio_fraction {risk.max_portfolio_fraction:.0%})")
    lost = journal.realised_loss_today(chain.chain_id)
    if lost >= risk.daily_loss_limit_usd:
        reasons.append(f"daily realised-loss kill switch: lost {lost:,.2f} USD today "
                       f"(limit {risk.daily_loss_limit_usd:,.2f})")

    gas_estimate = gas_limit = None
    if not reasons:
        tx = {"from": account, "to": to, "data": data, "value": hex(value)}
        override = _allowance_override(account, router, q.amount_in_raw) if needs_approval else None
        if venue == "v4" and q.asset_in == "USDC":  # the Permit2 allowance the execution-time permit will set
            nonce = v4_swap.decode_permit2_allowance(permit2[0])[2]
            override = v4_swap.estimate_overrides(account, q.amount_in_raw, deadline, nonce, needs_approval)
        try:
            params = [tx, "pending"] + ([override] if override else [])
            gas_estimate = int(chain.rpc("eth_estimateGas", *params), 16)
            gas_limit = int(gas_estimate * GAS_HEADROOM)
        except RpcError as exc:
            reasons.append(f"simulation reverts: {exc.revert_reason}")
    proposal = SwapProposal(
        id=uuid.uuid4().hex[:16], chain_id=chain.chain_id, account=account, quote=q,
        min_amount_out=from_raw(min_out_raw, q.asset_out), min_amount_out_raw=min_out_raw,
        max_slippage_bps=max_slippage_bps, deadline=deadline, price_impact_bps=q.price_impact_bps,
        notional_usd=notional, gas_estimate=gas_estimate, gas_limit=gas_limit, needs_approval=needs_approval,
        risk=RiskVerdict(ok=not reasons, reasons=reasons), to=to, data=data, value=value,
    )
    journal.record_proposal(proposal, "proposed" if not reasons else "refused", "; ".join(reasons) or None)
    return proposal


# --- execution --------------------------------------------------------------------------------------------

_HINTS = {
    "EXPIRED": "the deadline passed before the swap was mined",
    "Transaction too old": "the deadline passed before the swap was mined",
    "INSUFFICIENT_OUTPUT_AMOUNT": "the price moved beyond max slippage",
    "Too little received": "the price moved beyond max slippage",
    "TransactionDeadlinePassed": "the deadline passed before the swap was mined",
    "V4TooLittleReceived": "the price moved beyond max slippage",
    "AllowanceExpired": "the Permit2 allowance expired before the swap was mined",
    "SignatureExpired": "the Permit2 permit expired before the swap was mined",
}


def explain(reason: str, proposal: SwapProposal | None = None) -> str:
    for key, hint in _HINTS.items():
        if key in reason:
            extra = f" ({proposal.max_slippage_bps} bps)" if proposal and "slippage" in hint else ""
            return f"{reason}: {hint}{extra}"
    return reason


def _sign_send(chain: C.Chain, acct, tx: dict) -> str:
    signed = acct.sign_transaction(tx)
    return chain.rpc("eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())


def decode_swap(receipt: dict, side: str, venue: str) -> tuple[float, float] | None:
    """(amount_in, amount_out) in token units from the pool's Swap event; None if there is none."""
    if venue == "v4":
        return v4_swap.amounts_from_receipt(receipt, side)
    pool, topic = (C.V2_PAIR, V2_SWAP_TOPIC) if venue == "v2" else (C.V3_POOL, V3_SWAP_TOPIC)
    for log in receipt.get("logs", []):
        if log["address"].lower() != pool.lower() or not log["topics"] or log["topics"][0] != topic:
            continue
        if venue == "v2":
            a0i, a1i, a0o, a1o = decode(["uint256"] * 4, log["data"])
            return (a1i / 1e18, a0o / 1e6) if side == "sell" else (a0i / 1e6, a1o / 1e18)
        a0, a1 = decode(["int256", "int256", "uint160", "uint128", "int24"], log["data"])[:2]
        return (a1 / 1e18, -a0 / 1e6) if side == "sell" else (a0 / 1e6, -a1 / 1e18)
    return None


def settle_from_receipt(journal: Journal, row: dict, receipt: dict) -> dict:
    """Turn a mined receipt into the journal's final row (also used by reconciliation after a crash)."""
    gas_used = int(receipt["gasUsed"], 16)
    gas_eth = gas_used * int(receipt.get("effectiveGasPrice", "0x0"), 16) / 1e18
    block = int(receipt["blockNumber"], 16)
    if int(receipt["status"], 16) != 1:
        journal.update(row["id"], status="reverted", gas_used=gas_used, gas_cost_eth=gas_eth, block=block,
                       reason=row.get("reason") or "reverted on chain")
        return journal.get(row["id"])
    amounts = decode_swap(receipt, row["side"], row["venue"])
    amount_in, amount_out = amounts if amounts else (row["amount_in"], None)
    spot = row["spot_price"] or 0.0
    eth, usdc = (amount_in, amount_out) if row["side"] == "sell" else (amount_out, amount_in)
    price = usdc / eth if eth and usdc else None
    # realised loss at the proposal's mid price: value given up in the fill (fee + impact) plus gas
    loss = None
    if amount_out is not None and spot:
        value_in = amount_in * spot if row["side"] == "sell" else amount_in
        value_out = amount_out if row["side"] == "sell" else amount_out * spot
        loss = value_in - value_out + gas_eth * spot
    journal.update(row["id"], status="confirmed", amount_in=amount_in, amount_out=amount_out, price=price,
                   gas_used=gas_used, gas_cost_eth=gas_eth, block=block, realised_loss_usd=loss, reason=None)
    return journal.get(row["id"])


def _fail(journal: Journal, proposal: SwapProposal, reason: str, status: str = "failed", **extra) -> None:
    journal.update(proposal.id, status=status, reason=reason, **extra)


def execute_swap(chain: C.Chain, proposal: SwapProposal, journal: Journal | None = None, simulate: bool = True,
                 allow_live: bool = False, timeout: float = 60.0) -> SwapReceipt:
    """Approve (exact amount) if needed, simulate with eth_call, sign locally, send, wait, decode.

    Reverts (slippage, deadline) raise TransactionFailed after the journal row is marked failed/reverted.
    If the node dies after the row went `pending`, ChainUnavailable is raised and the next `chain up`
    reconciles the row by its tx hash.
    """
    journal = journal or default_journal()
    if not proposal.risk.ok:
        raise SwapRefused("swap refused: " + "; ".join(proposal.risk.reasons))
    if chain.chain_id != proposal.chain_id:
        raise SwapRefused(f"proposal was made on chain id {proposal.chain_id}, the node is on {chain.chain_id}")
    check_chain(chain, allow_live)
    acct = signer(chain, allow_live)
    if acct.address != proposal.account:
        raise SwapRefused(f"proposal was made for {proposal.account}, the signing key is {acct.address}")
    if journal.get(proposal.id) is None:
        journal.record_proposal(proposal)
    elif journal.get(proposal.id)["status"] != "proposed":
        raise SwapRefused(f"proposal {proposal.id} was already executed or refused; propose again")
    q = proposal.quote
    nonce_hex, gas_price_hex, tip_hex = chain.rpc.batch([
        ("eth_getTransactionCount", [acct.address, "pending"]),
        ("eth_gasPrice", []),
        ("eth_maxPriorityFeePerGas", []),
    ])
    nonce, tip = int(nonce_hex, 16), int(tip_hex, 16)
    fees = {"maxFeePerGas": 2 * int(gas_price_hex, 16) + tip, "maxPriorityFeePerGas": tip}
    base = {"type": 2, "chainId": chain.chain_id, **fees}

    if q.venue == "v4" and q.asset_in == "USDC":  # the Permit2 permit for exactly this swap, until its deadline
        allowance_now = chain.rpc.batch([v4_swap.permit2_allowance_call(acct.address)])[0]
        permit_nonce = v4_swap.decode_permit2_allowance(allowance_now)[2]
        permit = v4_swap.signed_permit(acct, chain.chain_id, q.amount_in_raw, proposal.deadline, permit_nonce)
        data = v4_swap.swap_call(False, q.amount_in_raw, proposal.min_amount_out_raw, proposal.deadline, permit)
        proposal = proposal.model_copy(update={"data": data, "gas_limit": None})  # re-estimated below
    call = {"from": acct.address, "to": proposal.to, "data": proposal.data, "value": hex(proposal.value)}
    if simulate:  # before the approval too: a swap that would revert sends nothing at all
        overrides = [_allowance_override(acct.address, proposal.to, q.amount_in_raw)] if proposal.needs_approval else []
        if q.venue == "v4" and proposal.needs_approval:
            overrides = [v4_swap.usdc_allowance_override(acct.address)]
        try:
            chain.rpc("eth_call", call, "pending", *overrides)
        except RpcError as exc:
            reason = explain(exc.revert_reason, proposal)
            _fail(journal, proposal, reason)
            raise TransactionFailed(f"swap would revert, nothing sent: {reason}") from None
    if proposal.needs_approval:  # exact-amount approval, never unlimited (V4: Permit2 once; permits bound it)
        token, approve_data = (v4_swap.approve_permit2_call() if q.venue == "v4" else
                               (C.USDC, calldata("approve(address,uint256)", proposal.to, q.amount_in_raw)))
        approve = {**base, "nonce": nonce, "to": token, "value": 0, "gas": 80_000, "data": approve_data}
        if int(wait_receipt(chain, _sign_send(chain, acct, approve))["status"], 16) != 1:
            _fail(journal, proposal, "USDC approve reverted")
            raise TransactionFailed("USDC approve reverted; check the USDC balance")
        nonce += 1
    gas = proposal.gas_limit or int(int(chain.rpc("eth_estimateGas", call, "pending"), 16) * GAS_HEADROOM)
    tx = {**base, "nonce": nonce, "to": proposal.to, "data": proposal.data, "value": proposal.value, "gas": gas}
    signed = acct.sign_transaction(tx)
    raw = bytes(signed.raw_transaction)
    tx_hash = "0x" + keccak(raw).hex()
    journal.update(proposal.id, status="pending", tx_hash=tx_hash)  # before it leaves: crash-safe
    try:
        try:
            chain.rpc("eth_sendRawTransaction", "0x" + raw.hex())
        except RpcError as exc:
            # a retried send the node already holds is fine; anything else is a real rejection
            if chain.rpc("eth_getTransactionByHash", tx_hash) is None:
                _fail(journal, proposal, f"node rejected the transaction: {exc.rpc_message}")
                raise TransactionFailed(f"node rejected the transaction: {exc.rpc_message}") from None
        receipt = wait_receipt(chain, tx_hash, timeout=timeout)
    except ChainUnavailable:
        raise ChainUnavailable(f"the node stopped mid-swap; tx {tx_hash} is journalled as pending and will be "
                               "reconciled on the next `trader chain up`") from None
    row = settle_from_receipt(journal, journal.get(proposal.id), receipt)
    if row["status"] != "confirmed":
        reason = _revert_reason(chain, call, receipt)
        _fail(journal, proposal, explain(reason, proposal), status="reverted")
        raise TransactionFailed(f"swap reverted in block {row['block']} (tx {tx_hash}): {explain(reason, proposal)}")
    return SwapReceipt(id=proposal.id, status="confirmed", tx_hash=tx_hash, venue=q.venue, side=q.side,
                       amount_in=row["amount_in"], amount_out=row["amount_out"], price=row["price"],
                       gas_used=row["gas_used"], gas_cost_eth=row["gas_cost_eth"],
                       fee_paid=row["amount_in"] * FEE_BPS[q.venue] / 10_000, block=row["block"])


def _revert_reason(chain: C.Chain, call: dict, receipt: dict) -> str:
    """Replay the reverted call on the parent block's state to recover the reason string."""
    parent = hex(int(receipt["blockNumber"], 16) - 1)
    try:
        chain.rpc("eth_call", call, parent)
    except RpcError as exc:
        return exc.revert_reason
    return "reverted on chain"


def swap(chain: C.Chain, side: str, amount: float, asset: str = "ETH", venue: str | None = None,
         max_slippage_bps: int = 50, deadline_s: int = 120, risk: RiskLimits | None = None,
         journal: Journal | None = None, allow_live: bool = False) -> SwapReceipt:
    """propose_swap + execute_swap in one call (refusals raise SwapRefused)."""
    journal = journal or default_journal()
    proposal = propose_swap(chain, side, amount, asset, venue, max_slippage_bps, deadline_s, risk, journal,
                            allow_live)
    return execute_swap(chain, proposal, journal, allow_live=allow_live)
