"""Per-network addresses: Ethereum mainnet (V2/V3 plus periphery) and Base (Uniswap V4, the seed's venue).

Every address is the canonical one on the real network; the offline replicas deploy real bytecode at exactly
these, so a user's own scripts and tools work against a replica unchanged. A chain is matched to its network by
chain id (a fork keeps its upstream id; anything that is not Base is treated as mainnet, as before).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trader_core.errors import ConfigError, SwapRefused

NATIVE = "0x0000000000000000000000000000000000000000"  # V4's currency for native ETH (no wrapping)

# Periphery that wallets, SDKs and libraries call, on both replicas.
PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
MULTICALL3_DEPLOYER = "0x05f32B3cC3888453ff71B01135B34FF8e41263F2"  # its real deployer, nonce 0

# Ethereum mainnet, beside the V2/V3 contracts in onchain.node.chain.
MAINNET_QUOTER_V1 = "0xb27308f9F90D607463bb33eA1BeBb41C27CE5AB6"
MAINNET_SWAP_ROUTER02 = "0x68b3465833fb72A70ecDF485E0e4C7bD8665Fc45"
MAINNET_UNIVERSAL_ROUTER = "0x66a9893cC07D91D95644AEDD05D03f95e1dBA8Af"
MAINNET_V4_POOL_MANAGER = "0x000000000004444c5dc75cB358380D2e3dE08A90"  # the UR's constructor names it
MAINNET_V4_POSITION_MANAGER = "0xbD216513d74C8cf14cf4747E6AaA6420FF64ee9e"

# Base (chain id 8453).
BASE_CHAIN_ID = 8453
BASE_WETH = "0x4200000000000000000000000000000000000006"
BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
BASE_POOL_MANAGER = "0x498581fF718922c3f8e6A244956aF099B2652b2b"
BASE_UNIVERSAL_ROUTER = "0x6fF5693b99212Da76ad316178A184AB56D299b43"
BASE_STATE_VIEW = "0xA3c0c9b65baD0b08107Aa264b0f3dB444b867A71"
BASE_V4_QUOTER = "0x0d5e0F971ED27FBfF6c2837bf31316121532048D"
BASE_POSITION_MANAGER = "0x7C5f5A4bBd8fD63184577525326123B519429bDc"
# Base's V2/V3 deployments: constructor arguments of the Universal Router (not deployed on the Base replica).
BASE_V2_FACTORY = "0x8909Dc15e40173Ff4699343b6eB8132c65e18eC6"
BASE_V3_FACTORY = "0x33128a8fC17869897dcE68Ed026d694621f6FDfD"
BASE_V3_NPM = "0x03a520b32C04BF3bEEf7BEb72E919cf822Ed34f1"
V2_PAIR_INIT_CODE_HASH = "0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"
V3_POOL_INIT_CODE_HASH = "0xe34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"

# The seed's pool: native ETH / USDC, 0.05%, tick spacing 10, no hooks (id = keccak of the abi-encoded key).
V4_FEE = 500
V4_TICK_SPACING = 10
V4_POOL_ID = "0x96d4b53a38337a5733179751781178a2613306063c511b78cd02684739288c0a"
V4_DATASET = "univ4-base-eth-swaps"

VENUE_HELP = {
    "v2": "Uniswap V2 (Router02 / the WETH-USDC pair)",
    "v3": "Uniswap V3 (SwapRouter / the 0.05% pool)",
    "v4": "Uniswap V4 (Universal Router / the native-ETH-USDC 0.05% pool)",
}


@dataclass(frozen=True)
class Network:
    """What a chain id means to this toolkit: its tokens, venues and the contracts at canonical addresses."""

    name: str
    chain_id: int
    weth: str
    usdc: str
    venues: tuple[str, ...]
    default_venue: str
    contracts: dict[str, str] = field(default_factory=dict)  # name -> canonical address (replica checks these)

    def venue(self, venue: str | None) -> str:
        """`venue` normalised and checked against this network (None -> the default); one-line SwapRefused."""
        if venue is None or str(venue).strip() == "":
            return self.default_venue
        v = str(venue).strip().lower()
        if v not in VENUE_HELP:
            raise SwapRefused(f"unknown venue {venue!r}; use {', '.join(self.venues)} on {self.name}")
        if v not in self.venues:
            where = "--network base" if v == "v4" else "--network mainnet"
            raise SwapRefused(f"venue {v} is not on {self.name} (chain id {self.chain_id}); "
                              f"use {' or '.join(self.venues)} here, or start a chain with {where}")
        return v


MAINNET = Network(
    name="mainnet", chain_id=1,
    weth="0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", usdc="0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
    venues=("v2", "v3"), default_venue="v2",
    contracts={"QuoterV1": MAINNET_QUOTER_V1, "SwapRouter02": MAINNET_SWAP_ROUTER02,
               "UniversalRouter": MAINNET_UNIVERSAL_ROUTER, "Permit2": PERMIT2, "Multicall3": MULTICALL3},
)
BASE = Network(
    name="base", chain_id=BASE_CHAIN_ID, weth=BASE_WETH, usdc=BASE_USDC,
    venues=("v4",), default_venue="v4",
    contracts={"WETH9": BASE_WETH, "USDC": BASE_USDC, "PoolManager": BASE_POOL_MANAGER,
               "UniversalRouter": BASE_UNIVERSAL_ROUTER, "Permit2": PERMIT2, "StateView": BASE_STATE_VIEW,
               "V4Quoter": BASE_V4_QUOTER, "PositionManager": BASE_POSITION_MANAGER, "Multicall3": MULTICALL3},
)
NETWORKS: dict[str, Network] = {n.name: n for n in (MAINNET, BASE)}


def get_network(name: str | None) -> Network:
    """A network by name (None -> mainnet); bad names are one ConfigError line."""
    key = "mainnet" if name is None else str(name).strip().lower()
    if key not in NETWORKS:
        raise ConfigError(f"unknown network {name!r}; use one of: {', '.join(NETWORKS)}")
    return NETWORKS[key]


def network_for(chain_id: int) -> Network:
    """Base for chain id 8453, mainnet for everything else (mainnet forks and the replica are id 1)."""
    return BASE if chain_id == BASE_CHAIN_ID else MAINNET


def network_of(chain) -> Network:
    """The network of a connected `onchain.node.chain.Chain` (duck-typed on `chain_id` to stay import-free)."""
    return network_for(int(chain.chain_id))
