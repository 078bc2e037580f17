"""Mined receipts -> journal fields: the pool's Swap event decoded into the real fill, gas, and the cost of the
fill against the mid price. Pure functions (no RPC, no journal), shared by execution and reconciliation."""

from __future__ import annotations

from typing import Any

from onchain.node import chain as C
from onchain.venues import v4_swap
from onchain.node.rpc import decode
from onchain.venues.v2_v3 import V2_SWAP_TOPIC, V3_SWAP_TOPIC


def decode_swap(receipt: dict, side: str, venue: str) -> tuple[float, float] | None:
    """(amount_in, amount_out) in token units from the pool's Swap event; None if there is none."""
    if venue == "v4":  # the PoolManager's Swap event of the seed's pool
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


def gas_of(receipt: dict) -> tuple[int, float, int]:
    """(gas used, gas cost in ETH, block number)."""
    gas_used = int(receipt["gasUsed"], 16)
    return gas_used, gas_used * int(receipt.get("effectiveGasPrice", "0x0"), 16) / 1e18, int(receipt["blockNumber"], 16)


def settlement(row: dict[str, Any], receipt: dict, approve_gas_eth: float = 0.0) -> dict[str, Any]:
    """The journal fields a mined swap receipt settles `row` with (status confirmed or reverted).

    Cost of the fill at the proposal's mid price: value given up (fee + impact) plus gas (approval included).
    """
    gas_used, gas_eth, block = gas_of(receipt)
    gas_eth += approve_gas_eth
    if int(receipt["status"], 16) != 1:
        return {"status": "reverted", "gas_used": gas_used, "gas_cost_eth": gas_eth, "block": block,
                "reason": row.get("reason") or "reverted on chain"}
    amounts = decode_swap(receipt, row["side"], row["venue"])
    amount_in, amount_out = amounts if amounts else (row["amount_in"], None)
    spot = row.get("spot_price") or 0.0
    eth, usdc = (amount_in, amount_out) if row["side"] == "sell" else (amount_out, amount_in)
    price = usdc / eth if eth and usdc else None
    loss = None
    if amount_out is not None and spot:
        value_in = amount_in * spot if row["side"] == "sell" else amount_in
        value_out = amount_out if row["side"] == "sell" else amount_out * spot
        loss = value_in - value_out + gas_eth * spot
    return {"status": "confirmed", "amount_in": amount_in, "amount_out": amount_out, "price": price,
            "gas_used": gas_used, "gas_cost_eth": gas_eth, "block": block, "realised_loss_usd": loss,
            "reason": None}
