"""Guarded swaps: propose (quote, guards, risk, gas estimate; signs nothing) then execute (simulate, sign
locally, send, wait, decode the Swap event). Every step is journalled before it can be lost.

Exact-input only: `sell X ETH` spends X ETH; `buy X ETH` solves the USDC input for ~X ETH and spends that.
Signing is serialised per account and node (a file lock around nonce -> sign -> journal -> send), so
concurrent swaps get distinct nonces, distinct transactions and one journal row each.
V4 (Base) goes through the Universal Router; its USDC input is authorised by a Permit2 permit signed at execution,
under the same lock (onchain.venues.v4_swap), the ERC-20 approval going to Permit2 instead of the router.
"""

from __future__ import annotations

import math
import sys
import uuid

from eth_utils import keccak

from onchain.node import chain as C
from onchain.venues import v4_swap
from onchain.execution.journal import Journal, default_journal
from onchain.node.keys import signer
from onchain.node.locks import signing_lock
from onchain.models import Quote, RiskVerdict, SwapProposal, SwapReceipt
from onchain.networks import PERMIT2, network_of
from onchain.execution.receipts import decode_swap, gas_of, settlement
from onchain.node.transactions import wait_receipt
from onchain.execution.risk import RiskLimits, load_risk_limits, mark_to_market_loss
from onchain.node.rpc import RpcError, calldata, mapping_slot, word
from onchain.venues.v2_v3 import FEE_BPS, from_raw, get_quote, parse_order
from trader_core.errors import (ChainUnavailable, SwapRefused, TraderError, TransactionFailed,
                                TransactionPending)

__all__ = ["RiskLimits", "load_risk_limits", "signer", "check_chain", "propose_swap", "execute_swap", "swap",
           "explain", "decode_swap"]

GAS_HEADROOM = 1.5  # a bare estimate failed ~3% of V2 swaps on anvil (block timestamp race)
APPROVE_GAS = 80_000
_V3_EXACT_IN = "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))"


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


def _max_fee(gas_price_hex: str, tip_hex: str) -> tuple[int, int]:
    """(maxFeePerGas, maxPriorityFeePerGas): room for the base fee to double before the tx is stuck."""
    tip = int(tip_hex, 16)
    return 2 * int(gas_price_hex, 16) + tip, tip


def propose_swap(chain: C.Chain, side: str, amount: float, asset: str = "ETH", venue: str | None = None,
                 max_slippage_bps: int = 50, deadline_s: int = 120, risk: RiskLimits | None = None,
                 journal: Journal | None = None, allow_live: bool = False,
                 allow_real_key: bool | None = None) -> SwapProposal:
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
    account = signer(chain, allow_live, allow_real_key).address
    risk = risk or load_risk_limits()
    journal = journal or default_journal()

    q = get_quote(chain, side, amount, asset, venue)
    # who must hold the USDC allowance: the router, or Permit2 on V4 (which then allows the router per swap)
    router = {"v2": C.V2_ROUTER, "v3": C.V3_ROUTER, "v4": PERMIT2}[venue]
    bal = calldata("balanceOf(address)", account)
    eth_raw, usdc_raw, allowance, gas_price, tip, *permit2 = chain.rpc.batch([
        ("eth_getBalance", [account, "latest"]),
        ("eth_call", [{"to": net.usdc, "data": bal}, "latest"]),
        ("eth_call", [{"to": net.usdc, "data": calldata("allowance(address,address)", account, router)}, "latest"]),
        ("eth_gasPrice", []),
        ("eth_maxPriorityFeePerGas", []),
    ] + ([v4_swap.permit2_allowance_call(account)] if venue == "v4" and q.asset_in == "USDC" else []))
    eth_bal, usdc_bal = int(eth_raw, 16) / 1e18, int(usdc_raw, 16) / 1e6
    # on the chain's clock (the next block's time), which a replica with baked history keeps years behind the wall
    deadline = chain.block_timestamp() + int(deadline_s)
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
    lost = mark_to_market_loss(journal.flows_today(account, chain.node_id), q.spot_price)
    if lost >= risk.daily_loss_limit_usd:
        reasons.append(f"daily-loss kill switch: today's swaps are down {lost:,.2f} USD marked to market "
                       f"(limit daily_loss_limit_usd {risk.daily_loss_limit_usd:,.2f})")

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
            if "insufficient funds" in exc.rpc_message.lower():  # the node's own balance check, gas included
                need = f"{q.amount_in:.6g} + gas" if q.asset_in == "ETH" else "gas"
                reasons.append(f"insufficient ETH for the swap and its gas: need {need}, have {eth_bal:.6g}")
            else:
                reasons.append(f"simulation reverts: {exc.revert_reason}")
    if gas_limit is not None:
        # the node reserves value + gas limit x max fee up front: a sell of the whole balance cannot pay for gas
        max_fee, _ = _max_fee(gas_price, tip)
        gas_eth = (gas_limit + (APPROVE_GAS if needs_approval else 0)) * max_fee / 1e18
        need = gas_eth + (q.amount_in if q.asset_in == "ETH" else 0.0)
        if eth_bal < need:
            what = f"{q.amount_in:.6g} + up to {gas_eth:.6g} gas" if q.asset_in == "ETH" else f"up to {gas_eth:.6g} gas"
            reasons.append(f"insufficient ETH for the swap and its gas: need {need:.6g} ({what}), have {eth_bal:.6g}")
    proposal = SwapProposal(
        id=uuid.uuid4().hex[:16], chain_id=chain.chain_id, account=account, quote=q,
        min_amount_out=from_raw(min_out_raw, q.asset_out), min_amount_out_raw=min_out_raw,
        max_slippage_bps=max_slippage_bps, deadline=deadline, price_impact_bps=q.price_impact_bps,
        notional_usd=notional, gas_estimate=gas_estimate, gas_limit=gas_limit, needs_approval=needs_approval,
        risk=RiskVerdict(ok=not reasons, reasons=reasons), to=to, data=data, value=value,
    )
    journal.record_proposal(proposal, "proposed" if not reasons else "refused", "; ".join(reasons) or None,
                            node_id=chain.node_id)
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


def _sign(acct, tx: dict) -> tuple[str, str]:
    """(raw tx hex, tx hash) signed locally: the hash is known before anything leaves."""
    raw = bytes(acct.sign_transaction(tx).raw_transaction)
    return "0x" + raw.hex(), "0x" + keccak(raw).hex()


def _send(chain: C.Chain, journal: Journal, trade_id: str, raw: str, tx_hash: str, what: str) -> None:
    try:
        chain.rpc("eth_sendRawTransaction", raw)
    except RpcError as exc:
        # a retried send the node already holds is fine; anything else is a real rejection
        if chain.rpc("eth_getTransactionByHash", tx_hash) is None:
            reason = f"node rejected the {what}: {exc.rpc_message}"
            journal.transition(trade_id, "pending", status="failed", reason=reason)
            raise TransactionFailed(reason) from None


def _with_permit(chain: C.Chain, acct, proposal: SwapProposal) -> SwapProposal:
    """V4 with USDC in: the swap with a Permit2 permit for exactly its input, valid until its deadline, signed for
    Permit2's nonce at `pending` (under the signing lock, so two swaps never sign one nonce). Else unchanged."""
    q = proposal.quote
    if q.venue != "v4" or q.asset_in != "USDC":
        return proposal
    allowance = chain.rpc.batch([v4_swap.permit2_allowance_call(acct.address, "pending")])[0]
    permit = v4_swap.signed_permit(acct, chain.chain_id, q.amount_in_raw, proposal.deadline,
                                   v4_swap.decode_permit2_allowance(allowance)[2])
    data = v4_swap.swap_call(False, q.amount_in_raw, proposal.min_amount_out_raw, proposal.deadline, permit)
    return proposal.model_copy(update={"data": data, "gas_limit": None})  # the permit costs gas: re-estimated


def _simulate(chain: C.Chain, journal: Journal, proposal: SwapProposal, call: dict) -> None:
    """eth_call at `pending`, with the allowance the approval will give; a revert closes the row, sends nothing."""
    q, owner = proposal.quote, call["from"]
    overrides = []
    if proposal.needs_approval:
        overrides = [v4_swap.usdc_allowance_override(owner) if q.venue == "v4"
                     else _allowance_override(owner, proposal.to, q.amount_in_raw)]
    try:
        chain.rpc("eth_call", call, "pending", *overrides)
    except RpcError as exc:
        reason = explain(exc.revert_reason, proposal)
        journal.transition(proposal.id, "proposed", status="failed", reason=reason)
        raise TransactionFailed(f"swap would revert, nothing sent: {reason}") from None


def _approval(proposal: SwapProposal) -> tuple[str, str]:
    """(token, calldata) of the USDC approval: the exact amount to the router, never unlimited; on V4 Permit2 is
    approved once and each swap's permit bounds what the router may pull."""
    if proposal.quote.venue == "v4":
        return v4_swap.approve_permit2_call()
    return C.USDC, calldata("approve(address,uint256)", proposal.to, proposal.quote.amount_in_raw)


def _pending_note(tx_hash: str | None) -> str:
    what = f"tx {tx_hash}" if tx_hash else "the swap"
    return (f"{what} is journalled as pending and is reconciled with the node by the next command "
            "(or `trader trades --reconcile`)")


def execute_swap(chain: C.Chain, proposal: SwapProposal, journal: Journal | None = None, simulate: bool = True,
                 allow_live: bool = False, timeout: float = 60.0,
                 allow_real_key: bool | None = None) -> SwapReceipt:
    """Approve (exact amount) if needed, simulate with eth_call, sign locally, send, wait, decode.

    Reverts (slippage, deadline) raise TransactionFailed after the journal row is marked failed/reverted.
    If the node dies, or the receipt does not come within `timeout`, the row stays `pending` with every hash
    already journalled, and ChainUnavailable / TransactionPending is raised; reconciliation settles it.
    """
    journal = journal or default_journal()
    if not proposal.risk.ok:
        raise SwapRefused("swap refused: " + "; ".join(proposal.risk.reasons))
    if chain.chain_id != proposal.chain_id:
        raise SwapRefused(f"proposal was made on chain id {proposal.chain_id}, the node is on {chain.chain_id}")
    check_chain(chain, allow_live)
    acct = signer(chain, allow_live, allow_real_key)
    if acct.address != proposal.account:
        raise SwapRefused(f"proposal was made for {proposal.account}, the signing key is {acct.address}")
    row = journal.get(proposal.id)
    if row is None:
        journal.record_proposal(proposal, node_id=chain.node_id)
    elif row["status"] != "proposed":
        raise SwapRefused(f"proposal {proposal.id} was already executed or closed (status {row['status']}); propose again")
    q = proposal.quote
    approve_gas, tx_hash, last_hash = 0.0, None, None
    try:
        with signing_lock(chain, acct.address):  # (permit ->) simulate -> nonce -> sign -> journal -> send
            proposal = _with_permit(chain, acct, proposal)
            call = {"from": acct.address, "to": proposal.to, "data": proposal.data, "value": hex(proposal.value)}
            if simulate:  # before the approval too: a swap that would revert sends nothing at all
                _simulate(chain, journal, proposal, call)
            nonce_hex, gas_price_hex, tip_hex = chain.rpc.batch([
                ("eth_getTransactionCount", [acct.address, "pending"]),
                ("eth_gasPrice", []),
                ("eth_maxPriorityFeePerGas", []),
            ])
            nonce = int(nonce_hex, 16)
            max_fee, tip = _max_fee(gas_price_hex, tip_hex)
            base = {"type": 2, "chainId": chain.chain_id, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}
            if not journal.transition(proposal.id, "proposed", status="pending", node_id=chain.node_id,
                                      node_instance=chain.instance, nonce=nonce):
                raise SwapRefused(f"proposal {proposal.id} was executed or declined by another process; "
                                  "propose again")
            if proposal.needs_approval:  # journalled before it leaves, like the swap
                token, approve_data = _approval(proposal)
                raw, approve_hash = _sign(acct, {**base, "nonce": nonce, "to": token, "value": 0, "gas": APPROVE_GAS,
                                                 "data": approve_data})
                journal.update(proposal.id, approve_tx_hash=approve_hash)
                last_hash = approve_hash
                _send(chain, journal, proposal.id, raw, approve_hash, "USDC approval")
                approval = wait_receipt(chain, approve_hash, timeout=timeout)
                approve_gas = gas_of(approval)[1]
                if int(approval["status"], 16) != 1:
                    journal.transition(proposal.id, "pending", status="failed", gas_cost_eth=approve_gas,
                                       reason="USDC approve reverted")
                    raise TransactionFailed("USDC approve reverted; check the USDC balance")
                nonce += 1
            gas = proposal.gas_limit or int(int(chain.rpc("eth_estimateGas", call, "pending"), 16) * GAS_HEADROOM)
            raw, tx_hash = _sign(acct, {**base, "nonce": nonce, "to": proposal.to, "data": proposal.data,
                                        "value": proposal.value, "gas": gas})
            journal.update(proposal.id, tx_hash=tx_hash)  # before it leaves: crash-safe
            last_hash = tx_hash
            _send(chain, journal, proposal.id, raw, tx_hash, "transaction")
        receipt = wait_receipt(chain, tx_hash, timeout=timeout)
    except ChainUnavailable:
        raise ChainUnavailable("the node stopped mid-swap; " + _pending_note(last_hash)) from None
    except TransactionPending:
        raise TransactionPending(f"not mined within {timeout:.0f}s; " + _pending_note(last_hash)) from None

    row = journal.get(proposal.id)
    fields = {**settlement(row, receipt, approve_gas), "node_instance": chain.instance}
    journal.transition(proposal.id, "pending", **fields)  # a concurrent reconcile may have settled it already
    row = journal.get(proposal.id)
    if row["status"] != "confirmed":
        reason = explain(_revert_reason(chain, call, receipt), proposal)
        journal.update(proposal.id, reason=reason)
        raise TransactionFailed(f"swap reverted in block {row['block']} (tx {tx_hash}): {reason}")
    _save_chain(chain)
    return SwapReceipt(id=proposal.id, status="confirmed", tx_hash=tx_hash, venue=q.venue, side=q.side,
                       amount_in=row["amount_in"], amount_out=row["amount_out"], price=row["price"],
                       gas_used=row["gas_used"], gas_cost_eth=row["gas_cost_eth"],
                       fee_paid=row["amount_in"] * FEE_BPS[q.venue] / 10_000, block=row["block"])


def _save_chain(chain: C.Chain) -> None:
    """Checkpoint the managed replica after a confirmed swap; the swap is done, so a failure here only warns."""
    try:
        C.checkpoint(chain)
    except TraderError as exc:
        print(f"warning: the replica's state was not saved ({exc}); a restart would not keep this swap",
              file=sys.stderr)


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
         journal: Journal | None = None, allow_live: bool = False, allow_real_key: bool | None = None) -> SwapReceipt:
    """propose_swap + execute_swap in one call (refusals raise SwapRefused)."""
    journal = journal or default_journal()
    proposal = propose_swap(chain, side, amount, asset, venue, max_slippage_bps, deadline_s, risk, journal,
                            allow_live, allow_real_key)
    return execute_swap(chain, proposal, journal, allow_live=allow_live, allow_real_key=allow_real_key)
