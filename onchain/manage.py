"""`chain up` / `chain down` / `chain fund` as plain functions, for either network (mainnet or Base)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from onchain import chain as C
from onchain.base_replica import BASE_REPLICA_VERSION, build_base_replica, seed_for
from onchain.networks import BASE, MAINNET, Network, get_network, network_of
from onchain.periphery import deploy_mainnet_periphery
from onchain.replica import REPLICA_VERSION, build_replica, default_seed_price
from onchain.rpc import checksum, mapping_slot, mask_url, word
from trader_core.errors import ChainError, ConfigError
from trader_core.runtime import trader_home


def _replica_cache(price: float, network: Network = MAINNET) -> Path:
    if network is BASE:
        return trader_home() / "cache" / f"replica-base-v{BASE_REPLICA_VERSION}-{price:.4f}.json"
    return trader_home() / "cache" / f"replica-v{REPLICA_VERSION}-{price:.4f}.json"


def _seed_price(network: Network, price: float | None, dataset: str | None) -> float:
    if price is not None:
        return float(price)
    return seed_for(None, dataset).price if network is BASE else default_seed_price(dataset)


def _is_built(chain: C.Chain, network: Network) -> bool:
    marker = BASE.contracts["PoolManager"] if network is BASE else C.V2_PAIR
    return chain.rpc("eth_getCode", marker, "latest") not in ("0x", "0x0")


def _build(chain: C.Chain, network: Network, price: float | None, dataset: str | None) -> None:
    """Deploy and seed; Base without --price starts at the data's exact latest sqrtPriceX96."""
    if network is BASE:
        build_base_replica(chain, seed_for(price, dataset))
    else:
        build_replica(chain, _seed_price(network, price, dataset))
        deploy_mainnet_periphery(chain)  # QuoterV1, SwapRouter02, Universal Router, Permit2, Multicall3


def start_chain(
    fork_url: str | None = None,
    fork_block: int | None = None,
    port: int | None = None,
    state: str | Path | None = None,
    price: float | None = None,
    dataset: str | None = None,
    network: str | None = None,
) -> C.ChainInfo:
    """Start anvil (fork if a fork URL is given or $ETH_RPC_URL is set, else the offline replica) of
    `network`: mainnet (default; V2/V3) or base (chain id 8453; Uniswap V4, seeded from the V4 swap data).

    Idempotent: if the state file's chain still answers, it is returned unchanged. Pending journal rows
    from a previous run are reconciled against the chain before returning.
    """
    net = get_network(network)
    fork_url = fork_url or os.environ.get("ETH_RPC_URL") or None
    if fork_block is not None and not fork_url:
        raise ConfigError("--fork-block needs --fork-url (or ETH_RPC_URL); the replica has no upstream chain")
    if port is not None and not (1024 <= port <= 65535):
        raise ConfigError(f"--port must be between 1024 and 65535, got {port}")
    if price is not None and not (price > 0 and price < 1e9):
        raise ConfigError(f"--price must be a positive USDC-per-ETH price, got {price}")
    current = C.status()
    if current is not None and current.running:
        wanted = "fork" if fork_url else "replica"
        if current.mode != wanted or current.network != net.name or (port is not None and port != current.port):
            raise ConfigError(f"a {current.network} {current.mode} is already running on {current.rpc_url} "
                              f"(pid {current.pid}); stop it first with `trader chain down`")
        return current
    if current is not None and C.pid_is_anvil(current.pid):
        C.stop_pid(current.pid)
    port = port or C.free_port()
    state_file = Path(state).expanduser().resolve() if state else None
    log_file = trader_home() / "chain" / "anvil.log"

    if fork_url:
        proc = C.launch_anvil(port, fork_url=fork_url, fork_block=fork_block, state=state_file, log_file=log_file)
        mode, seed = "fork", None
    else:
        seed = _seed_price(net, price, dataset)
        cache = _replica_cache(seed, net)
        persisted = state_file is not None and state_file.exists() and state_file.stat().st_size > 0
        load = None if (persisted or not cache.exists()) else cache
        proc = C.launch_anvil(port, chain_id=net.chain_id, load_state=load, state=state_file, log_file=log_file)
        mode = "replica"
    url = f"http://127.0.0.1:{port}"
    try:
        chain = C.Chain(url)
        if mode == "fork" and network_of(chain) is not net:
            raise ConfigError(f"--network {net.name} expects chain id {net.chain_id}, but the fork URL serves "
                              f"chain id {chain.chain_id}; pass a {net.name} RPC URL or the matching --network")
        if mode == "replica" and not _is_built(chain, net):
            _build(chain, net, price, dataset)
            C.dump_state(chain, _replica_cache(seed, net))
        elif mode == "replica":
            chain.rpc("evm_mine")  # a loaded dump ends on an old block: start the chain clock at now
    except BaseException:
        C.stop_pid(proc.pid)
        raise
    info = C.ChainInfo(
        rpc_url=url, pid=proc.pid, chain_id=chain.chain_id, mode=mode, port=port,
        fork_url=mask_url(fork_url) if fork_url else None, fork_block=fork_block, price=seed,
        started_at=time.time(), log_file=str(log_file), network=net.name,
    )
    C.write_state(info)
    chain.info, chain.mode = info, mode
    from onchain.journal import Journal

    journal = Journal()
    try:
        journal.reconcile(chain)
    finally:
        journal.close()
    return info


def stop_chain() -> C.ChainInfo | None:
    """Stop the anvil from the state file by its pid and remove the state file; None if none was recorded."""
    info = C.read_state()
    if info is None:
        return None
    C.stop_pid(info.pid)
    C.state_path().unlink(missing_ok=True)
    info.running = False
    return info


def fund(chain: C.Chain, address: str, eth: float | None = None, usdc: float | None = None) -> dict:
    """Set an address's ETH balance (anvil_setBalance) and USDC balance (write USDC's balances slot 9).

    Works the same on a mainnet or Base fork: real USDC keeps `balances` at slot 9 behind its proxy.
    """
    if not chain.local:
        raise ChainError(f"refusing to fund on {chain.describe()}: only a local anvil node can set balances")
    address = checksum(address)
    for label, value in (("--eth", eth), ("--usdc", usdc)):
        if value is not None and not (value >= 0 and value < 1e15):
            raise ConfigError(f"{label} must be a non-negative amount, got {value}")
    if eth is None and usdc is None:
        raise ConfigError("nothing to fund: pass --eth and/or --usdc")
    if eth is not None:
        chain.rpc("anvil_setBalance", address, hex(int(round(eth * 10**18))))
    if usdc is not None:
        slot = mapping_slot(address, C.USDC_BALANCE_SLOT)
        chain.rpc("anvil_setStorageAt", network_of(chain).usdc, slot, word(int(round(usdc * 10**6))))
    from onchain.uniswap import get_portfolio

    return get_portfolio(chain, address).model_dump()


class PrivateReplica:
    """A throwaway replica on a free port (benchmarks, tests): not recorded in the state file, always stopped.

    Loads the cached replica dump when there is one, so it starts in about a second.
    """

    def __init__(self, price: float | None = None, log_file: Path | None = None, network: str | None = None):
        self.network = get_network(network)
        self.requested_price = price
        self.price = _seed_price(self.network, price, None)
        self.log_file = log_file
        self.proc = None
        self.chain: C.Chain | None = None

    def __enter__(self) -> C.Chain:
        port = C.free_port()
        cache = _replica_cache(self.price, self.network)
        self.proc = C.launch_anvil(port, chain_id=self.network.chain_id, load_state=cache if cache.exists() else None,
                                   log_file=self.log_file or trader_home() / "chain" / "private-anvil.log")
        try:
            self.chain = C.Chain(f"http://127.0.0.1:{port}")
            if not _is_built(self.chain, self.network):
                _build(self.chain, self.network, self.requested_price, None)
                C.dump_state(self.chain, cache)
            else:
                self.chain.rpc("evm_mine")
        except BaseException:
            self.__exit__()
            raise
        return self.chain

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            C.stop_pid(self.proc.pid)
            self.proc.wait(timeout=10)
            self.proc = None
