"""Which key signs: TRADER_PRIVATE_KEY (strictly validated, never echoed) or anvil's public dev account 0.

A real key on a local node that uses a real network's chain id (the replica and a mainnet fork are chain id 1)
would produce signatures that are valid on that network too, so it is refused unless the user opts in.
"""

from __future__ import annotations

import os

from onchain.node import chain as C
from trader_core.errors import ConfigError, SwapRefused

KEY_ENV = "TRADER_PRIVATE_KEY"
ALLOW_REAL_KEY_ENV = "TRADER_ALLOW_REAL_KEY_ON_LOCAL"
# Chain ids no public network uses: signatures made for them cannot be replayed anywhere real.
DEV_CHAIN_IDS = frozenset({31337, 1337})
# Anvil's accounts 0..9 from its public mnemonic ("test test ... junk"): keys the whole world knows.
DEV_ADDRESSES = frozenset({
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65", "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    "0x976EA74026E726554dB657fA54763abd0C3a0aa9", "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
    "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f", "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
})


def account_from_key(key: str):
    """An eth_account LocalAccount from 64 hex digits (0x optional). Errors describe the shape, never the key."""
    from eth_account import Account

    digits = key.strip()
    digits = digits[2:] if digits[:2].lower() == "0x" else digits
    if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        shape = "hex digits" if all(c in "0123456789abcdefABCDEF" for c in digits) else "characters (not all hex)"
        raise ConfigError(f"{KEY_ENV} must be a 32-byte private key: 64 hex digits, with or without 0x "
                          f"(it has {len(digits)} {shape})")
    try:
        return Account.from_key("0x" + digits)
    except Exception:  # out of the curve's range (zero, >= n): the message must not echo the key
        raise ConfigError(f"{KEY_ENV} is not a valid secp256k1 private key (out of range)") from None


def trading_address() -> str:
    """The trading account's address: TRADER_PRIVATE_KEY's, else anvil dev account 0 (nothing is signed)."""
    key = os.environ.get(KEY_ENV)
    if key:
        return account_from_key(key).address
    return C.dev_account(C.TRADER_ACCOUNT).address


def real_key_allowed(allow_real_key: bool | None = None) -> bool:
    if allow_real_key is not None:
        return allow_real_key
    return os.environ.get(ALLOW_REAL_KEY_ENV, "").strip().lower() in ("1", "true", "yes")


def signer(chain: C.Chain, allow_live: bool = False, allow_real_key: bool | None = None):
    """TRADER_PRIVATE_KEY if set, else anvil's dev account 0 — the latter only on a local node. Never logged.

    A key that is not one of anvil's public dev keys is refused on a local node with a real network's chain id
    unless `allow_real_key` (or TRADER_ALLOW_REAL_KEY_ON_LOCAL=1): its signatures would be valid there too.
    """
    key = os.environ.get(KEY_ENV)
    if key:
        account = account_from_key(key)
        if (chain.local and chain.chain_id not in DEV_CHAIN_IDS and account.address not in DEV_ADDRESSES
                and not real_key_allowed(allow_real_key)):
            raise SwapRefused(
                f"{KEY_ENV} is a real key (not an anvil dev key) and this local node uses chain id {chain.chain_id}, "
                "a real network's id: what it signs here would be valid there too; use an anvil dev key, or opt "
                f"in with --allow-real-key (or {ALLOW_REAL_KEY_ENV}=1)")
        return account
    if not chain.local:
        raise SwapRefused(f"no key for {chain.describe()}: anvil dev keys are only used on a local node; "
                          f"set {KEY_ENV}")
    return C.dev_account(C.TRADER_ACCOUNT)
