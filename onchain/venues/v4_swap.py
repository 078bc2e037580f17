"""Universal Router calldata for V4 swaps, encoded with `uniswap-universal-router-decoder`, and Permit2.

A swap is one `execute(commands, inputs, deadline)`: V4_SWAP with SWAP_EXACT_IN_SINGLE / SETTLE_ALL / TAKE_ALL.
Native ETH goes in as msg.value (no wrapping). USDC goes in through Permit2: USDC approves Permit2 once, and
each swap carries a PERMIT2_PERMIT signed at execution for exactly its input amount, expiring at its deadline,
so the router can never pull more, or later, than that one swap.

Router version note: the library's 3.x line (the one that supports web3 8) writes SWAP_EXACT_IN_SINGLE with
UR 2.1.1's extra `minHopPriceX36` field. The router at Base's canonical address (UR 2.0) and the npm build we deploy
(2.1.0) read v4-periphery 1.0's struct without it: the library's bytes are not valid ABI for them (a strict decoder
rejects the hookData pointer; the router happens to read them as an empty hookData only because currency0 is
address 0). `for_deployed_router` therefore re-encodes that one action's parameters in the deployed layout (same
values, the spare field must be 0) and rebuilds the enclosing arrays; every other byte is the library's.
"""

from __future__ import annotations

import functools

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak

from onchain.venues import v4
from onchain.models import Quote
from onchain.networks import BASE_UNIVERSAL_ROUTER, BASE_USDC, NATIVE, PERMIT2, V4_FEE, V4_TICK_SPACING
from onchain.node.rpc import calldata, decode, mapping_slot, word
from onchain.node.transactions import send_as
from trader_core.errors import ChainError

USDC_ALLOWANCE_SLOT = 10  # FiatToken `allowed` (Base USDC and the replica token)
PERMIT2_ALLOWANCE_SLOT = 1  # Permit2: SignatureTransfer.nonceBitmap is slot 0, AllowanceTransfer.allowance slot 1
MAX_UINT256 = 2**256 - 1
V4_SWAP, PERMIT2_PERMIT = 0x10, 0x0A
SWAP_EXACT_IN_SINGLE = 0x06
COMMAND_TYPE_MASK = 0x3F
_EXECUTE_SELECTOR = keccak(text="execute(bytes,bytes[],uint256)")[:4]
# IV4Router.ExactInputSingleParams: v4-periphery 1.0 (the deployed routers) and UR 2.1.1+ (the library's layout)
DEPLOYED_EXACT_IN_SINGLE = f"({v4.POOL_KEY_TYPE},bool,uint128,uint128,bytes)"
LIBRARY_EXACT_IN_SINGLE = f"({v4.POOL_KEY_TYPE},bool,uint128,uint128,uint256,bytes)"


@functools.lru_cache(maxsize=1)
def codec():
    """The library's offline codec (no node: we only encode)."""
    from uniswap_universal_router_decoder import RouterCodec

    return RouterCodec()


@functools.lru_cache(maxsize=1)
def pool_key():
    return codec().encode.v4_pool_key(NATIVE, BASE_USDC, V4_FEE, V4_TICK_SPACING)


def currencies(zero_for_one: bool) -> tuple[str, str]:
    """(currency in, currency out): zeroForOne = native ETH in."""
    return (NATIVE, BASE_USDC) if zero_for_one else (BASE_USDC, NATIVE)


def swap_call(zero_for_one: bool, amount_in: int, min_out: int, deadline: int, permit=None) -> str:
    """UR execute() calldata: [PERMIT2_PERMIT,] V4_SWAP(SWAP_EXACT_IN_SINGLE, SETTLE_ALL, TAKE_ALL).

    `permit` is (permit_single, signed_message) from `signed_permit`; min_out is enforced twice by the router
    (the swap's amountOutMinimum and TAKE_ALL's minimum)."""
    if min_out <= 0:
        raise ChainError("refusing to encode a V4 swap with amountOutMinimum 0")
    cur_in, cur_out = currencies(zero_for_one)
    chain = codec().encode.chain()
    if permit is not None:
        chain = chain.permit2_permit(*permit)
    data = (chain.v4_swap()
            .swap_exact_in_single(pool_key(), zero_for_one, amount_in, min_out, hook_data=b"", min_hop_price_x36=0)
            .settle_all(cur_in, amount_in)
            .take_all(cur_out, min_out)
            .build_v4_swap()
            .build(deadline))
    return for_deployed_router(data)


def _v4_swap_input(raw: bytes) -> tuple[bytes, list, int, int]:
    """(commands, inputs, deadline, index of the V4_SWAP input) of an execute(bytes,bytes[],uint256) call."""
    if raw[:4] != _EXECUTE_SELECTOR:
        raise ChainError("not a Universal Router execute(bytes,bytes[],uint256) call")
    commands, inputs, deadline = abi_decode(["bytes", "bytes[]", "uint256"], raw[4:])
    kinds = [c & COMMAND_TYPE_MASK for c in commands]
    if V4_SWAP not in kinds:
        raise ChainError("the Universal Router call has no V4_SWAP command")
    return commands, list(inputs), deadline, kinds.index(V4_SWAP)


def for_deployed_router(data: str) -> str:
    """The library's execute() calldata with SWAP_EXACT_IN_SINGLE re-encoded in the deployed router's layout."""
    raw = bytes.fromhex(data[2:])
    commands, inputs, deadline, at = _v4_swap_input(raw)
    actions, params = abi_decode(["bytes", "bytes[]"], inputs[at])
    params = list(params)
    for j, action in enumerate(actions):
        if action == SWAP_EXACT_IN_SINGLE:
            key, zero_for_one, amount_in, min_out, min_hop, hook_data = abi_decode([LIBRARY_EXACT_IN_SINGLE],
                                                                                   params[j])[0]
            if min_hop != 0:
                raise ChainError("the deployed Universal Router has no per-hop price limit; leave it at 0")
            params[j] = abi_encode([DEPLOYED_EXACT_IN_SINGLE], [(key, zero_for_one, amount_in, min_out, hook_data)])
    inputs[at] = abi_encode(["bytes", "bytes[]"], [actions, params])
    return "0x" + (_EXECUTE_SELECTOR + abi_encode(["bytes", "bytes[]", "uint256"], [commands, inputs, deadline])).hex()


def read_swap(data: str) -> dict:
    """Decode our execute() call as the deployed router reads it (strict ABI): the swap, its limits, deadline."""
    commands, inputs, deadline, at = _v4_swap_input(bytes.fromhex(data[2:]))
    actions, params = abi_decode(["bytes", "bytes[]"], inputs[at])
    key, zero_for_one, amount_in, min_out, hook_data = abi_decode([DEPLOYED_EXACT_IN_SINGLE], params[0])[0]
    return {"commands": bytes(commands), "actions": bytes(actions), "pool_key": key, "zero_for_one": zero_for_one,
            "amount_in": amount_in, "amount_out_minimum": min_out, "hook_data": hook_data, "deadline": deadline,
            "settle_all": abi_decode(["address", "uint256"], params[1]),
            "take_all": abi_decode(["address", "uint256"], params[2])}


def router_call(q: Quote, min_out_raw: int, deadline: int) -> tuple[str, str, int]:
    """(to, data, value) of the swap without a permit (proposal time: nothing is signed yet)."""
    zero_for_one = q.side == "sell"
    data = swap_call(zero_for_one, q.amount_in_raw, min_out_raw, deadline)
    return BASE_UNIVERSAL_ROUTER, data, q.amount_in_raw if zero_for_one else 0


# --- Permit2 ----------------------------------------------------------------------------------------------

def permit2_allowance_call(owner: str, block: str = "latest") -> tuple[str, list]:
    """Permit2.allowance(owner, USDC, Universal Router) at `block` (`pending` when signing the next permit)."""
    data = calldata("allowance(address,address,address)", owner, BASE_USDC, BASE_UNIVERSAL_ROUTER)
    return ("eth_call", [{"to": PERMIT2, "data": data}, block])


def decode_permit2_allowance(raw: str) -> tuple[int, int, int]:
    """(amount, expiration, nonce) of Permit2's allowance owner -> USDC -> Universal Router."""
    return decode(["uint160", "uint48", "uint48"], raw)


def signed_permit(acct, chain_id: int, amount: int, expiration: int, nonce: int):
    """An EIP-712 PermitSingle for exactly `amount` USDC to the Universal Router, valid until `expiration`
    (the signature itself expires then too); returns what the library's permit2_permit() takes."""
    permit_single, message = codec().create_permit2_signable_message(
        BASE_USDC, amount, expiration, nonce, BASE_UNIVERSAL_ROUTER, expiration, chain_id, PERMIT2)
    return permit_single, acct.sign_message(message)


def permit2_allowance_slot(owner: str, token: str = BASE_USDC, spender: str = BASE_UNIVERSAL_ROUTER) -> str:
    """Storage slot of Permit2.allowance[owner][token][spender] (a PackedAllowance word)."""
    inner = mapping_slot(owner, PERMIT2_ALLOWANCE_SLOT)
    middle = keccak(bytes.fromhex(token[2:].rjust(64, "0")) + bytes.fromhex(inner[2:]))
    return "0x" + keccak(bytes.fromhex(spender[2:].rjust(64, "0")) + middle).hex()


def packed_allowance(amount: int, expiration: int, nonce: int) -> int:
    return amount | (expiration << 160) | (nonce << 208)


def usdc_permit2_allowance_slot(owner: str) -> str:
    """Storage slot of USDC.allowance[owner][Permit2]."""
    inner = mapping_slot(owner, USDC_ALLOWANCE_SLOT)
    return "0x" + keccak(bytes.fromhex(PERMIT2[2:].rjust(64, "0")) + bytes.fromhex(inner[2:])).hex()


def usdc_allowance_override(owner: str) -> dict:
    """State override: USDC approved to Permit2 (what the one-time approve() will do)."""
    return {BASE_USDC: {"stateDiff": {usdc_permit2_allowance_slot(owner): word(MAX_UINT256)}}}


def estimate_overrides(owner: str, amount: int, expiration: int, nonce: int, needs_approval: bool) -> dict:
    """State overrides for estimating a USDC-in swap before anything is signed: the Permit2 allowance the
    execution-time permit will set (and the USDC approval to Permit2 if it is still missing)."""
    overrides = usdc_allowance_override(owner) if needs_approval else {}
    overrides[PERMIT2] = {"stateDiff": {permit2_allowance_slot(owner): word(packed_allowance(amount, expiration,
                                                                                              nonce))}}
    return overrides


def approve_permit2_call() -> tuple[str, str]:
    """(to, data): USDC.approve(Permit2, max) — the one-time step; Permit2 then bounds each spender."""
    return BASE_USDC, calldata("approve(address,uint256)", PERMIT2, MAX_UINT256)


# --- receipts ---------------------------------------------------------------------------------------------

def amounts_from_receipt(receipt: dict, side: str) -> tuple[float, float] | None:
    """(amount_in, amount_out) in token units from the PoolManager's Swap event of this pool."""
    for log in receipt.get("logs", []):
        topics = log.get("topics") or []
        if len(topics) < 2 or topics[0] != v4.SWAP_TOPIC or topics[1].lower() != v4.POOL_ID:
            continue
        a0, a1, *_ = v4.decode_swap_log(log)
        if side == "sell":  # ETH paid (negative delta), USDC received
            return -a0 / 1e18, a1 / 1e6
        return -a1 / 1e6, a0 / 1e18
    return None


MAX_UINT160, MAX_UINT48 = 2**160 - 1, 2**48 - 1


def permit2_allow(chain, owner: str, spender: str) -> None:
    """The standard Permit2 setup for an unlocked account: USDC approves Permit2, Permit2 allows `spender`."""
    send_as(chain, owner, BASE_USDC, calldata("approve(address,uint256)", PERMIT2, 2**256 - 1))
    send_as(chain, owner, PERMIT2, calldata("approve(address,address,uint160,uint48)", BASE_USDC, spender,
                                            MAX_UINT160, MAX_UINT48))
