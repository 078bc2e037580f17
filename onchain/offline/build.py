"""Building the offline replicas of either network, their seed-state cache, and `PrivateReplica`.

A new replica is deployed, seeded and (given a number of bars) walked through real market history
(onchain.offline.history) once per seed price and bar count, and cached under trader_home()/cache (keyed by
REPLICA_VERSION, so a version that changes what is deployed rebuilds), then loaded in about a second. Mainnet:
V2/V3 plus the periphery real clients call; Base: Uniswap V4. Each new replica's seed state carries a random
identity (onchain.offline.mainnet.mark_identity), which the journal uses to tell nodes apart across restarts.
"""

from __future__ import annotations

from pathlib import Path

from onchain.node import chain as C
from onchain.offline.base import build_base_replica, seed_for
from onchain.offline.history import HistoryPlan, bake, check_bars, plan_history, read_history, resume_clock
from onchain.models import ChainHistory
from onchain.networks import BASE, MAINNET, MULTICALL3, Network, get_network
from onchain.offline.periphery import deploy_mainnet_periphery, has_code
from onchain.offline.mainnet import REPLICA_VERSION, build_replica, default_seed_price
from trader_core.paths import trader_home


def replica_cache(price: float, network: Network = MAINNET, history_bars: int = 0) -> Path:
    """The cached seed state of a new `network` replica seeded at `price`, with `history_bars` bars of history
    baked in (a policy that needs more bars gets its own cache, built once)."""
    prefix = "replica" if network is MAINNET else f"replica-{network.name}"
    baked = f"-h{history_bars}" if history_bars else ""
    return trader_home() / "cache" / f"{prefix}-v{REPLICA_VERSION}-{price:.4f}{baked}.json"


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


def history_plan(network: Network, bars: int, price: float | None, dataset: str | None) -> HistoryPlan | None:
    """The history a new replica bakes: none without bars, nor when --price seeds a price that no real history
    ends at (the pool's price is always the history's last close)."""
    if not bars or price is not None:
        return None
    return plan_history(network, bars, dataset)


def new_replica(chain: C.Chain, network: Network, price: float | None, dataset: str | None,
                plan: HistoryPlan | None, cache: Path) -> ChainHistory | None:
    """Build, bake the planned history (the node's genesis must precede it: HistoryPlan.genesis), cache."""
    build(chain, network, price, dataset)
    history = bake(chain, network, plan) if plan is not None else None
    C.dump_state(chain, cache)
    return history


def resume(chain: C.Chain) -> ChainHistory | None:
    """A node just loaded from a dump: with baked history its clock goes on from the head block (not the wall
    clock, which would age every bar by years); without, an empty block starts its clock at now, as before."""
    history = read_history(chain)
    if history is not None:
        resume_clock(chain)
    else:
        chain.rpc("evm_mine")
    return history


def upgrade_restored(chain: C.Chain, network: Network) -> list[str]:
    """Add what a replica saved by an older version lacks (balances and pools stay as saved); returns the
    names added. Mainnet states saved before REPLICA_VERSION 3 have no periphery."""
    if network is MAINNET and not has_code(chain, MULTICALL3):
        return list(deploy_mainnet_periphery(chain))
    return []


class PrivateReplica:
    """A throwaway replica on a free port (benchmarks, tests): not recorded in the state file, always stopped
    (tied to this process, so even a killed caller cannot leak it).

    Loads the cached replica dump when there is one, so it starts in about a second. `history_bars`: bars of real
    history baked into it (onchain.offline.history), as `trader chain up` does; 0: none.
    """

    def __init__(self, price: float | None = None, log_file: Path | None = None, network: str | None = None,
                 history_bars: int = 0):
        self.network = get_network(network)
        self.requested_price = price
        self.price = seed_price(self.network, price, None)
        self.log_file = log_file
        self.history_bars = 0 if price is not None else check_bars(history_bars)  # --price: no real history
        self.history: ChainHistory | None = None
        self.node: C.NodeProcess | None = None
        self.chain: C.Chain | None = None

    def __enter__(self) -> C.Chain:
        cache = replica_cache(self.price, self.network, self.history_bars)
        cached = cache.exists()
        plan = None if cached else history_plan(self.network, self.history_bars, self.requested_price, None)
        self.node = C.launch_anvil(None, chain_id=self.network.chain_id, load_state=cache if cached else None,
                                   log_file=self.log_file or trader_home() / "chain" / "private-anvil.log",
                                   detach=False, managed=False,  # not an orphan of the home: its own
                                   timestamp=plan.genesis if plan else None)
        try:
            self.chain = C.Chain(f"http://127.0.0.1:{self.node.port}")
            if not is_built(self.chain, self.network):
                self.history = new_replica(self.chain, self.network, self.requested_price, None, plan, cache)
            else:
                self.history = resume(self.chain)
        except BaseException:
            self.__exit__()
            raise
        return self.chain

    def __exit__(self, *exc) -> None:
        if self.node is not None:
            self.node.stop()
            self.node = None
