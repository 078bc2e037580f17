"""The trading account's wallet on a local node: the default a new chain starts with, and `chain fund`.

A new replica or fork of either network starts the trading account with 10 ETH + 25,000 USDC (flags >
TRADER_WALLET_ETH/_USDC > that default). USDC is the network's own token (mainnet or Base USDC); both keep
`balances` at slot 9 (FiatToken), so funding is one storage write on a replica and on a fork alike.
"""

from __future__ import annotations

import math
import os

from onchain.node import chain as C
from onchain.networks import network_of
from onchain.node.rpc import checksum, mapping_slot, word
from onchain.venues.v2_v3 import get_portfolio
from trader_core.errors import ChainError, ConfigError

DEFAULT_WALLET = {"eth": 10.0, "usdc": 25_000.0}
WALLET_ENV = {"eth": "TRADER_WALLET_ETH", "usdc": "TRADER_WALLET_USDC"}
MAX_FUND = {"eth": 1e9, "usdc": 1e12}


def check_amount(label: str, value) -> float:
    """A finite, non-negative amount within MAX_FUND; anything else is one ConfigError line."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{label} must be a number, got {value!r}") from None
    kind = "eth" if "eth" in label.lower() else "usdc"
    if not (math.isfinite(x) and 0 <= x <= MAX_FUND[kind]):
        raise ConfigError(f"{label} must be between 0 and {MAX_FUND[kind]:g}, got {value!r}")
    return x


def wallet(eth: float | None = None, usdc: float | None = None) -> tuple[dict[str, float], bool]:
    """The trading account's starting wallet: flags > TRADER_WALLET_ETH/_USDC > 10 ETH + 25,000 USDC.
    Also says whether any amount was asked for explicitly (then it applies to a restored chain too)."""
    out, explicit = {}, False
    for kind, flag in (("eth", eth), ("usdc", usdc)):
        if flag is not None:
            out[kind], explicit = check_amount(f"--{kind}", flag), True
        elif os.environ.get(WALLET_ENV[kind]):
            out[kind] = check_amount(WALLET_ENV[kind], os.environ[WALLET_ENV[kind]])
        else:
            out[kind] = DEFAULT_WALLET[kind]
    return out, explicit


def fund(chain: C.Chain, address: str, eth: float | None = None, usdc: float | None = None) -> dict:
    """Set an address's ETH balance (anvil_setBalance) and USDC balance (write the network's USDC `balances`,
    slot 9). Works the same on a mainnet or Base fork: real USDC keeps `balances` at slot 9 behind its proxy.
    """
    if not chain.local:
        raise ChainError(f"refusing to fund on {chain.describe()}: only a local anvil node can set balances")
    address = checksum(address)
    for label, value in (("--eth", eth), ("--usdc", usdc)):
        if value is not None:
            check_amount(label, value)
    if eth is None and usdc is None:
        raise ConfigError("nothing to fund: pass --eth and/or --usdc")
    if eth is not None:
        chain.rpc("anvil_setBalance", address, hex(int(round(eth * 10**18))))
    if usdc is not None:
        slot = mapping_slot(address, C.USDC_BALANCE_SLOT)
        chain.rpc("anvil_setStorageAt", network_of(chain).usdc, slot, word(int(round(usdc * 10**6))))
    return get_portfolio(chain, address).model_dump()
