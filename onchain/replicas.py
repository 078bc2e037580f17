"""Building the offline replicas of either network, their seed-state cache, and `PrivateReplica`.

A new replica is deployed and seeded once per seed price and cached under trader_home()/cache (keyed by
REPLICA_VERSION, so a version that changes what is deployed rebuilds), then loaded in about a second. Mainnet:
V2/V3 plus the periphery real clients call; Base: Uniswap V4. Each new replica's seed state carries a random
identity (onchain.replica.mark_identity), which the journal uses to tell nodes apart across restarts.
"""

from __future__ import annotations

from pathlib import Path

from onchain import chain as C
from onchain.base_replica import build_base_replica, seed_for
from onchain.networks import BASE, MAINNET, MULTICALL3, Network, get_network
from onchain.periphery import deploy_mainnet_periphery, has_code
from onchain.replica import REPLICA_VERSION, build_replica, default_seed_price
from trader_core.paths import trader_home


def replica_cache(price: float, network: Network = MAINNET) -> Path:
    """The cached seed state of a new `network` replica seeded at `price`."""
    prefix = "replica" if network is MAINNET else f"replica-{network.name}"
    return trader_home() / "cache" / f"{prefix}-v{REPLICA_VERSION}-{price:.4f}.json"


def default_state_file(network: Network = MAINNET) -> Path:
    """Where a managed replica of `network` is saved between runs (one file per network, never shared)."""
    name = "replica-state.json" if network is MAINNET else f"replica-{network.name}-state.json"
    return trader_home() / "chain" / name


def seed_price(network: Network, price: float | None, dataset: str | None) -> float:
    """USDC per ETH a new replica starts at: `price`, else the data's latest close (Base: latest V4 swap)."""
    if price is not None:
        return float(price)
    return seed_for(None, dataset).price if network is BASE else default_seed_price(dataset)


def is_built(chain: C.Chain, network: Network) -> bool:
    """Whether the node already holds a `network` replica (its pool contract has code)."""
    marker = BASE.contracts["PoolManager"] if network is BASE else C.V2_PAIR
    return has_code(chain, marker)


def build(chain: C.Chain, network: Network, price: float | None, dataset: str | None) -> None:
    """Deploy and seed; Base without --price starts at the data's exact latest sqrtPriceX96."""
    if network is BASE:
        build_base_replica(chain, seed_for(price, dataset))
    else:
        build_replica(chain, seed_price(network, price, dataset))
        deploy_mainnet_periphery(chain)  # QuoterV1, SwapRouter02, Universal Router, Permit2, Multicall3


def upgrade_restored(chain: C.Chain, network: Network) -> list[str]:
    """Add what a replica saved by an older version lacks (balances and pools stay as saved); returns the
    names added. Mainnet states saved before REPLICA_VERSION 3 have no periphery."""
    if network is MAINNET and not has_code(chain, MULTICALL3):
        return list(deploy_mainnet_periphery(chain))
    return []


class PrivateReplica:
    """A throwaway replica on a free port (benchmarks, tests): not recorded in the state file, always stopped
    (tied to this process, so even a killed caller cannot leak it).

    Loads the cached replica dump when there is one, so it starts in about a second.
    """

    def __init__(self, price: float | None = None, log_file: Path | None = None, network: str | None = None):
        self.network = get_network(network)
        self.requested_price = price
        self.price = seed_price(self.network, price, None)
        self.log_file = log_file
        self.node: C.NodeProcess | None = None
        self.chain: C.Chain | None = None

    def __enter__(self) -> C.Chain:
        cache = replica_cache(self.price, self.network)
        self.node = C.launch_anvil(None, chain_id=self.network.chain_id, load_state=cache if cache.exists() else None,
                                   log_file=self.log_file or trader_home() / "chain" / "private-anvil.log",
                                   detach=False, managed=False)  # not an orphan of the home: its own
        try:
            self.chain = C.Chain(f"http://127.0.0.1:{self.node.port}")
            if not is_built(self.chain, self.network):
                build(self.chain, self.network, self.requested_price, None)
                C.dump_state(self.chain, cache)
            else:
                self.chain.rpc("evm_mine")
        except BaseException:
            self.__exit__()
            raise
        return self.chain

    def __exit__(self, *exc) -> None:
        if self.node is not None:
            self.node.stop()
            self.node = None
