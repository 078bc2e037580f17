"""Placing real contracts at their canonical addresses on a local anvil, and the periphery real clients expect.

Three ways, best first:
- `deploy_as`: the real deployer at its real nonce (address = keccak(rlp(deployer, nonce))), used where we know
  them (QuoterV1 and SwapRouter02 are the V3 deployer's nonces 3 and 14; Multicall3 is its deployer's nonce 0).
- `construct_at`: where the real deployer is unknown, the real creation code (with the real constructor
  arguments) runs once in the canonical address's own context and the runtime code it returns is installed
  there. Immutables that capture `address(this)` or the chain id (EIP-712 domain separators, NoDelegateCall)
  therefore come out exactly as a deployment at that address would make them, and constructor storage persists.
- `etch_permit2`: Permit2's published runtime code (v4-periphery ships it for exactly this use).
"""

from __future__ import annotations

import re

from eth_abi import encode as abi_encode

from onchain.node import chain as C
from onchain.node.artifacts import NPM_HINT, load_artifact, node_modules
from onchain.networks import (MAINNET_QUOTER_V1, MAINNET_SWAP_ROUTER02, MAINNET_UNIVERSAL_ROUTER,
                              MAINNET_V4_POOL_MANAGER, MAINNET_V4_POSITION_MANAGER, MULTICALL3,
                              MULTICALL3_DEPLOYER, NATIVE, PERMIT2, V2_PAIR_INIT_CODE_HASH, V3_POOL_INIT_CODE_HASH)
from onchain.node.transactions import send_as
from trader_core.errors import ChainError, DependencyMissing

V3_DEPLOYER = "0x6C9FC64A53c1b71FB3f9Af64d1ae3A4931A5f4E9"
# Sends the one transaction that runs a constructor in place (anvil impersonation; holds nothing afterwards).
PLACER = "0x00000000000000000000000000000000000Face5"
ROUTER_PARAMS = "(address,address,address,address,bytes32,bytes32,address,address,address,address)"


def has_code(chain: C.Chain, address: str) -> bool:
    return chain.rpc("eth_getCode", address, "latest") not in ("0x", "0x0")


def creation_code(name: str, types: list[str] | None = None, args: list | None = None) -> str:
    """An artifact's creation bytecode followed by its abi-encoded constructor arguments."""
    code = load_artifact(name)["bytecode"]
    return code + (abi_encode(types, args).hex() if types else "")


def _impersonated(chain: C.Chain, account: str, nonce: int | None = None) -> None:
    chain.rpc("anvil_impersonateAccount", account)
    chain.rpc("anvil_setBalance", account, hex(10**20))
    if nonce is not None:
        chain.rpc("anvil_setNonce", account, hex(nonce))


def deploy_as(chain: C.Chain, deployer: str, nonce: int, code: str, expected: str) -> str:
    """CREATE from the real deployer at its real nonce; raises if the address is not `expected`."""
    if has_code(chain, expected):
        return expected
    _impersonated(chain, deployer, nonce)
    try:
        receipt = send_as(chain, deployer, None, code, gas=15_000_000, nonce=nonce)
    finally:
        chain.rpc("anvil_stopImpersonatingAccount", deployer)
    got = receipt.get("contractAddress") or ""
    if got.lower() != expected.lower():
        raise ChainError(f"deployment landed at {got}, expected {expected}: deployer nonce mismatch")
    return expected


def construct_at(chain: C.Chain, address: str, code: str, sender: str = PLACER) -> str:
    """Run creation `code` in `address`'s context (eth_call returns the runtime it would deploy; one real
    transaction persists the constructor's storage writes), then install that runtime there."""
    if has_code(chain, address):
        return address
    chain.rpc("anvil_setCode", address, code)
    runtime = chain.rpc("eth_call", {"from": sender, "to": address, "data": "0x", "gas": hex(30_000_000)}, "latest")
    if runtime in ("0x", "0x0", None):
        raise ChainError(f"the constructor for {address} returned no runtime code")
    _impersonated(chain, sender)
    try:
        send_as(chain, sender, address, "0x", gas=30_000_000)
    finally:
        chain.rpc("anvil_stopImpersonatingAccount", sender)
    chain.rpc("anvil_setCode", address, runtime)
    return address


def permit2_runtime() -> str:
    """Permit2's runtime code as v4-periphery's DeployPermit2 etches it at the canonical address."""
    path = node_modules() / "@uniswap/v4-periphery/lib/permit2/test/utils/DeployPermit2.sol"
    if not path.exists():
        raise DependencyMissing(f"@uniswap/v4-periphery is missing Permit2's bytecode ({path.name}); {NPM_HINT}")
    found = re.search(r'hex"([0-9a-fA-F]+)"', path.read_text())
    if not found:
        raise ChainError(f"no Permit2 bytecode literal in {path}")
    return "0x" + found.group(1)


def multicall3_creation_code() -> str:
    """Multicall3's creation code as viem ships it (viem deploys it itself for deployless multicalls)."""
    path = node_modules() / "viem/_cjs/constants/contracts.js"
    if not path.exists():
        raise DependencyMissing(f"viem is not installed (Multicall3's bytecode ships in it); {NPM_HINT}")
    found = re.search(r"multicall3Bytecode\s*=\s*'(0x[0-9a-fA-F]+)'", path.read_text())
    if not found:
        raise ChainError(f"no multicall3Bytecode in {path}")
    return found.group(1)


def etch_permit2(chain: C.Chain) -> str:
    """Permit2 has no constructor storage: its runtime (immutables for chain id 1; on other chains it
    rebuilds the domain separator from block.chainid) is the whole deployment."""
    if not has_code(chain, PERMIT2):
        chain.rpc("anvil_setCode", PERMIT2, permit2_runtime())
    return PERMIT2


def deploy_multicall3(chain: C.Chain) -> str:
    return deploy_as(chain, MULTICALL3_DEPLOYER, 0, multicall3_creation_code(), MULTICALL3)


def universal_router_code(weth: str, v2_factory: str, v3_factory: str, v4_pool_manager: str, v3_npm: str,
                          v4_position_manager: str) -> str:
    """UniversalRouter creation code with its RouterParameters (no Across spoke pool on the replicas)."""
    params = (PERMIT2, weth, v2_factory, v3_factory, bytes.fromhex(V2_PAIR_INIT_CODE_HASH[2:]),
              bytes.fromhex(V3_POOL_INIT_CODE_HASH[2:]), v4_pool_manager, v3_npm, v4_position_manager, NATIVE)
    return creation_code("UniversalRouter", [ROUTER_PARAMS], [params])


def deploy_mainnet_periphery(chain: C.Chain) -> dict[str, str]:
    """QuoterV1, SwapRouter02, Universal Router, Permit2 and Multicall3 at their mainnet addresses."""
    deploy_as(chain, V3_DEPLOYER, 3, creation_code("QuoterV1", ["address", "address"], [C.V3_FACTORY, C.WETH]),
              MAINNET_QUOTER_V1)
    deploy_as(chain, V3_DEPLOYER, 14, creation_code(
        "SwapRouter02", ["address", "address", "address", "address"], [C.V2_FACTORY, C.V3_FACTORY, C.V3_NPM, C.WETH]),
        MAINNET_SWAP_ROUTER02)
    etch_permit2(chain)
    deploy_multicall3(chain)
    construct_at(chain, MAINNET_UNIVERSAL_ROUTER, universal_router_code(
        C.WETH, C.V2_FACTORY, C.V3_FACTORY, MAINNET_V4_POOL_MANAGER, C.V3_NPM, MAINNET_V4_POSITION_MANAGER))
    return {"QuoterV1": MAINNET_QUOTER_V1, "SwapRouter02": MAINNET_SWAP_ROUTER02,
            "UniversalRouter": MAINNET_UNIVERSAL_ROUTER, "Permit2": PERMIT2, "Multicall3": MULTICALL3}
