"""`chain up` / `chain down` as plain functions, for either network (mainnet: V2/V3; Base: Uniswap V4).

The replica keeps its state by default: it is saved to trader_home()/chain/replica-state.json (Base:
replica-base-state.json) after every swap and at `chain down`, and loaded by the next `chain up` (`fresh=True`
starts over from the seed). A fresh replica or fork starts the trading account with a realistic wallet (10 ETH +
25,000 of the network's USDC by default). Every process `chain up` starts is recorded, or stopped before it
returns with an error; anvils of this home that no state file records (orphans) are found and stopped.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from onchain.node import chain as C
from onchain.execution.journal import Journal
from onchain.node.keys import trading_address
from onchain.node.locks import file_lock
from onchain.networks import Network, get_network, network_of
from onchain.execution.reconcile import reconcile
from onchain.offline.history import HistoryPlan, check_bars
from onchain.offline.build import (PrivateReplica, default_state_file, history_plan, is_built, new_replica, replica_cache,
                              resume, seed_price, upgrade_restored)
from onchain.node.rpc import mask_url
from onchain.venues.v2_v3 import get_price
from onchain.execution.wallet import fund, wallet
from trader_core.errors import ChainError, ConfigError, StorageError
from trader_core.paths import ensure_dir, trader_home

__all__ = ["start_chain", "stop_chain", "stop_orphans", "fund", "wallet", "PrivateReplica", "default_state_file"]


@dataclass(frozen=True)
class _Up:
    """One `chain up` request, checked."""

    network: Network
    fork_url: str | None
    fork_block: int | None
    port: int | None
    state: Path | None
    price: float | None
    dataset: str | None
    funds: dict[str, float]
    explicit_funds: bool
    fresh: bool
    detach: bool
    account: str
    history_bars: int


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def _state_file_arg(state: str | Path | None) -> Path | None:
    if state is None:
        return None
    path = Path(state).expanduser().resolve()
    if path.is_dir():
        raise ConfigError(f"--state {path} is a folder; pass a file path such as {path / 'chain.json'}")
    if not path.parent.is_dir():
        raise ConfigError(f"--state {path}: its folder {path.parent} does not exist; create it or pass another path")
    if not os.access(path.parent, os.W_OK):
        raise StorageError(f"--state {path}: its folder {path.parent} is not writable")
    return path


def start_chain(
    fork_url: str | None = None,
    fork_block: int | None = None,
    port: int | None = None,
    state: str | Path | None = None,
    price: float | None = None,
    dataset: str | None = None,
    eth: float | None = None,
    usdc: float | None = None,
    fresh: bool = False,
    detach: bool = True,
    network: str | None = None,
    history_bars: int | None = None,
) -> C.ChainInfo:
    """Start anvil (fork if a fork URL is given or $ETH_RPC_URL is set, else the offline replica) of
    `network`: mainnet (default; V2/V3) or base (chain id 8453; Uniswap V4, seeded from the V4 swap data).

    `history_bars`: bars of real market history a new replica carries (onchain.offline.history; what a policy's
    look-back needs, which the caller knows: `trader chain up` asks the agent's policy); None or 0: none. A
    replica loaded from its cache or saved state keeps the history it was built with.

    Idempotent: if the state file's chain still answers, it is returned unchanged. Either way the journal is
    reconciled with the node before returning. `detach=False` ties the node to this process (tests, demos).
    """
    net = get_network(network)
    fork_url = fork_url or os.environ.get("ETH_RPC_URL") or None
    if fork_url and (urlsplit(fork_url).scheme not in ("http", "https") or not urlsplit(fork_url).hostname):
        raise ConfigError(f"--fork-url must be an http(s) URL of a {net.name} node, got {mask_url(fork_url)}")
    if fork_block is not None and not fork_url:
        raise ConfigError("--fork-block needs --fork-url (or ETH_RPC_URL); the replica has no upstream chain")
    if fork_block is not None and fork_block < 0:
        raise ConfigError(f"--fork-block must be a block number >= 0, got {fork_block}")
    if port is not None and not (1024 <= port <= 65535):
        raise ConfigError(f"--port must be between 1024 and 65535, got {port}")
    if price is not None and not (price > 0 and price < 1e9):
        raise ConfigError(f"--price must be a positive USDC-per-ETH price, got {price}")
    if fork_url and (price is not None or dataset is not None):
        raise ConfigError("--price and --data seed the offline replica; a fork takes its prices from the fork")
    bars = check_bars(history_bars)
    if fork_url and bars:
        raise ConfigError("--history-bars bakes history into the offline replica; a fork reads its pool's own history")
    state_arg = _state_file_arg(state)
    funds, explicit = wallet(eth, usdc)
    account = trading_address()  # a malformed TRADER_PRIVATE_KEY fails here, before anything starts
    up = _Up(net, fork_url, fork_block, port, state_arg, price, dataset, funds, explicit, fresh, detach, account,
             0 if price is not None else bars)  # --price: a seed no real history ends at
    chain_dir = ensure_dir(trader_home() / "chain")
    with file_lock(chain_dir / "manage.lock", what="chain up/down lock"):
        journal = Journal()  # a damaged journal fails here, before anything starts
        try:
            current = C.status()
            if current is not None and current.running:
                return _already_running(current, up, journal)
            if current is not None:  # recorded but not answering: make sure nothing of it is left
                C.stop_pid(current.pid)
                C.stop_pid(current.forwarder_pid)
            stop_orphans()
            return _launch(up, journal)
        finally:
            journal.close()


def _already_running(current: C.ChainInfo, up: _Up, journal: Journal) -> C.ChainInfo:
    wanted = "fork" if up.fork_url else "replica"
    if (current.mode != wanted or current.network != up.network.name or up.fresh
            or (up.port is not None and up.port != current.port)):
        ask = ("a fresh replica" if up.fresh else f"a {up.network.name} {wanted}"
               + (f" on port {up.port}" if up.port else ""))
        raise ConfigError(f"a {current.network} {current.mode} is already running on {current.rpc_url} "
                          f"(pid {current.pid}); to start {ask}, stop it first with `trader chain down`")
    stop_orphans(exclude={current.pid, current.forwarder_pid})
    chain = C.Chain(current.rpc_url, current)
    if up.explicit_funds:
        fund(chain, up.account, **up.funds)
        C.checkpoint(chain)
    reconcile(chain, journal)
    return current


def _start_replica(up: _Up, port: int | None, log_file: Path) -> tuple[C.NodeProcess, Path, bool, float | None,
                                                                          HistoryPlan | None]:
    """anvil loaded with the saved state (unless --fresh), else the cached seed state: (node, state file,
    restored from a save?, seed price of a new replica, the history plan when it is built here)."""
    state_file = up.state or default_state_file(up.network)
    saved = state_file.exists() and state_file.stat().st_size > 0
    if saved and up.fresh:
        state_file.unlink()
        _note(f"discarded the saved replica state {state_file} (--fresh)")
        saved = False
    if saved and (up.price is not None or up.dataset is not None):
        raise ConfigError(f"a saved replica (its pools and balances) is in {state_file}; --price/--data seed a "
                          "new one: add --fresh to discard the saved one")
    seed = None if saved else seed_price(up.network, up.price, up.dataset)
    cache = None if saved else replica_cache(seed, up.network, up.history_bars)
    load = state_file if saved else (cache if cache.exists() else None)
    # a replica built here starts its clock before the history it bakes
    plan = None if load is not None else history_plan(up.network, up.history_bars, up.price, up.dataset)
    try:
        node = C.launch_anvil(port, chain_id=up.network.chain_id, load_state=load, log_file=log_file,
                              detach=up.detach, timestamp=plan.genesis if plan else None)
    except ChainError as exc:
        if not saved:
            raise
        raise ChainError(f"the saved replica state {state_file} cannot be loaded ({exc}); move it aside, or "
                         "pass --fresh to start a new replica") from None
    return node, state_file, saved, seed, plan


def _launch(up: _Up, journal: Journal) -> C.ChainInfo:
    log_file = trader_home() / "chain" / "anvil.log"
    restored, saved, plan, history = None, False, None, None
    if up.fork_url:
        node = C.launch_anvil(up.port, fork_url=up.fork_url, fork_block=up.fork_block, state=up.state,
                              log_file=log_file, detach=up.detach)
        mode, seed, state_file = "fork", None, up.state
    else:
        mode = "replica"
        node, state_file, saved, seed, plan = _start_replica(up, up.port, log_file)
    port = node.port  # --port, or a free one launch_anvil picked
    url = f"http://127.0.0.1:{port}"
    try:
        chain = C.Chain(url)
        if mode == "fork" and network_of(chain) is not up.network:
            raise ConfigError(f"--network {up.network.name} expects chain id {up.network.chain_id}, but the fork "
                              f"URL serves chain id {chain.chain_id}; pass a {up.network.name} RPC URL or the "
                              "matching --network")
        if mode == "replica" and saved and not is_built(chain, up.network):
            raise ConfigError(f"the saved replica state {state_file} is not a {up.network.name} replica; pass "
                              "--state with another file, or --fresh to start a new one")
        if mode == "replica" and not saved and not is_built(chain, up.network):
            history = new_replica(chain, up.network, up.price, up.dataset, plan,
                                  replica_cache(seed, up.network, up.history_bars))
        elif mode == "replica":
            restored = int(chain.rpc("eth_blockNumber"), 16) if saved else None
            history = resume(chain)  # its clock first: on from the history's end, else from now
            if saved:
                added = upgrade_restored(chain, up.network)
                if added:
                    _note(f"the saved replica predates {', '.join(added)}: deployed them at their canonical "
                          "addresses (balances and pools as saved)")
        if restored is None or up.explicit_funds:  # a new chain gets the wallet; a restored one keeps its balances
            fund(chain, up.account, **up.funds)
        info = C.ChainInfo(
            rpc_url=url, pid=node.pid, chain_id=chain.chain_id, mode=mode, port=port,
            fork_url=mask_url(up.fork_url) if up.fork_url else None, fork_block=up.fork_block,
            price=seed if seed is not None else (get_price(chain).price if mode == "replica" else None),
            network=up.network.name, started_at=time.time(), log_file=str(log_file),
            state_file=str(state_file) if state_file else None, restored_block=restored,
            forwarder_pid=node.forwarder.pid if node.forwarder else None, history=history,
        )
        chain.info, chain.mode = info, mode
        C.checkpoint(chain)
        C.write_state(info)
    except BaseException:
        node.stop()
        raise
    if restored is not None:
        _note(f"restored the replica from {state_file} ({up.network.name}, saved at block {restored}): balances "
              "and pools as saved")
    reconcile(chain, journal)
    return info


def stop_orphans(exclude: set[int | None] | None = None) -> list[int]:
    """Stop anvils/forwarders this home started that no state file records; say so for each."""
    pids = C.find_orphans({p for p in (exclude or set()) if p})
    for pid in pids:
        C.stop_pid(pid)
        _note(f"stopped an orphan process (pid {pid}) this TRADER_HOME had started but not recorded")
    return pids


def stop_chain(save: bool = True) -> C.ChainInfo | None:
    """Save the replica's state, stop the recorded anvil (and its forwarder) by pid, remove the state file;
    None if none was recorded. Nothing is stopped when the state cannot be saved or the record removed."""
    chain_dir = ensure_dir(trader_home() / "chain")
    with file_lock(chain_dir / "manage.lock", what="chain up/down lock"):
        info = C.read_state()
        if info is None:
            stop_orphans()
            return None
        if not os.access(chain_dir, os.W_OK):
            raise StorageError(f"cannot remove {C.state_path()}: {chain_dir} is read-only; nothing was stopped")
        if save and info.mode == "replica" and C.pid_is_anvil(info.pid):
            try:
                C.checkpoint(C.Chain(info.rpc_url, info, timeout=30.0))
            except StorageError as exc:
                raise StorageError(f"{exc}; nothing was stopped (`trader chain down --no-save` stops it without "
                                   "saving)") from None
            except ChainError:
                pass  # a node that no longer answers has nothing to save
        C.stop_pid(info.pid)
        C.stop_pid(info.forwarder_pid)
        C.state_path().unlink(missing_ok=True)
        stop_orphans()
        info.running = False
        return info
