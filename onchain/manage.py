"""`chain up` / `chain down` / `chain fund` as plain functions.

The replica keeps its state by default: it is saved to trader_home()/chain/replica-state.json after every
swap and at `chain down`, and loaded by the next `chain up` (`fresh=True` starts over from the seed). A fresh
replica or fork starts the trading account with a realistic wallet (10 ETH + 25,000 USDC by default).
Every process `chain up` starts is recorded, or stopped before it returns with an error; anvils of this home
that no state file records (orphans) are found and stopped.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from onchain import chain as C
from onchain.journal import Journal
from onchain.keys import trading_address
from onchain.locks import file_lock
from onchain.reconcile import reconcile
from onchain.replica import REPLICA_VERSION, build_replica, default_seed_price
from onchain.rpc import checksum, mapping_slot, mask_url, word
from onchain.uniswap import get_portfolio, get_price
from trader_core.errors import ChainError, ConfigError, StorageError
from trader_core.paths import ensure_dir, trader_home

DEFAULT_WALLET = {"eth": 10.0, "usdc": 25_000.0}
WALLET_ENV = {"eth": "TRADER_WALLET_ETH", "usdc": "TRADER_WALLET_USDC"}
MAX_FUND = {"eth": 1e9, "usdc": 1e12}


def _replica_cache(price: float) -> Path:
    return trader_home() / "cache" / f"replica-v{REPLICA_VERSION}-{price:.4f}.json"


def default_state_file() -> Path:
    return trader_home() / "chain" / "replica-state.json"


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def _amount(label: str, value) -> float:
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
            out[kind], explicit = _amount(f"--{kind}", flag), True
        elif os.environ.get(WALLET_ENV[kind]):
            out[kind] = _amount(WALLET_ENV[kind], os.environ[WALLET_ENV[kind]])
        else:
            out[kind] = DEFAULT_WALLET[kind]
    return out, explicit


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
) -> C.ChainInfo:
    """Start anvil (fork if a fork URL is given or $ETH_RPC_URL is set, else the offline replica).

    Idempotent: if the state file's chain still answers, it is returned unchanged. Either way the journal is
    reconciled with the node before returning. `detach=False` ties the node to this process (tests, demos).
    """
    fork_url = fork_url or os.environ.get("ETH_RPC_URL") or None
    if fork_url and (urlsplit(fork_url).scheme not in ("http", "https") or not urlsplit(fork_url).hostname):
        raise ConfigError(f"--fork-url must be an http(s) URL of a mainnet node, got {mask_url(fork_url)}")
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
    state_arg = _state_file_arg(state)
    funds, explicit = wallet(eth, usdc)
    account = trading_address()  # a malformed TRADER_PRIVATE_KEY fails here, before anything starts
    chain_dir = ensure_dir(trader_home() / "chain")
    with file_lock(chain_dir / "manage.lock", what="chain up/down lock"):
        journal = Journal()  # a damaged journal fails here, before anything starts
        try:
            current = C.status()
            if current is not None and current.running:
                return _already_running(current, fork_url, port, fresh, funds if explicit else None, account,
                                        journal)
            if current is not None:  # recorded but not answering: make sure nothing of it is left
                C.stop_pid(current.pid)
                C.stop_pid(current.forwarder_pid)
            stop_orphans()
            return _launch(fork_url, fork_block, port, state_arg, price, dataset, funds, explicit, fresh, detach,
                           account, journal)
        finally:
            journal.close()


def _already_running(current: C.ChainInfo, fork_url, port, fresh, funds, account, journal) -> C.ChainInfo:
    wanted = "fork" if fork_url else "replica"
    if current.mode != wanted or (port is not None and port != current.port) or fresh:
        ask = "a fresh replica" if fresh else f"a {wanted}" + (f" on port {port}" if port else "")
        raise ConfigError(f"a {current.mode} is already running on {current.rpc_url} (pid {current.pid}); "
                          f"to start {ask}, stop it first with `trader chain down`")
    stop_orphans(exclude={current.pid, current.forwarder_pid})
    chain = C.Chain(current.rpc_url, current)
    if funds is not None:
        fund(chain, account, **funds)
        C.checkpoint(chain)
    reconcile(chain, journal)
    return current


def _launch(fork_url, fork_block, port, state_arg, price, dataset, funds, explicit, fresh, detach, account,
            journal) -> C.ChainInfo:
    port = port or C.free_port()
    log_file = trader_home() / "chain" / "anvil.log"
    restored = None
    if fork_url:
        node = C.launch_anvil(port, fork_url=fork_url, fork_block=fork_block, state=state_arg, log_file=log_file,
                              detach=detach)
        mode, seed, state_file = "fork", None, state_arg
    else:
        mode, state_file = "replica", state_arg or default_state_file()
        saved = state_file.exists() and state_file.stat().st_size > 0
        if saved and fresh:
            state_file.unlink()
            _note(f"discarded the saved replica state {state_file} (--fresh)")
            saved = False
        if saved and (price is not None or dataset is not None):
            raise ConfigError(f"a saved replica (its pools and balances) is in {state_file}; --price/--data seed a "
                              "new one: add --fresh to discard the saved one")
        seed = None if saved else (float(price) if price is not None else default_seed_price(dataset))
        cache = None if saved else _replica_cache(seed)
        load = state_file if saved else (cache if cache.exists() else None)
        try:
            node = C.launch_anvil(port, chain_id=1, load_state=load, log_file=log_file, detach=detach)
        except ChainError as exc:
            if not saved:
                raise
            raise ChainError(f"the saved replica state {state_file} cannot be loaded ({exc}); move it aside, or "
                             "pass --fresh to start a new replica") from None
    url = f"http://127.0.0.1:{port}"
    try:
        chain = C.Chain(url)
        if mode == "replica" and chain.rpc("eth_getCode", C.V2_PAIR, "latest") in ("0x", "0x0"):
            build_replica(chain, seed)
            C.dump_state(chain, _replica_cache(seed))
        elif mode == "replica":
            if saved:
                restored = int(chain.rpc("eth_blockNumber"), 16)
            chain.rpc("evm_mine")  # a loaded dump ends on an old block: start the chain clock at now
        if restored is None or explicit:  # a new chain gets the wallet; a restored one keeps its balances
            fund(chain, account, **funds)
        info = C.ChainInfo(
            rpc_url=url, pid=node.pid, chain_id=chain.chain_id, mode=mode, port=port,
            fork_url=mask_url(fork_url) if fork_url else None, fork_block=fork_block,
            price=seed if seed is not None else (get_price(chain, "v2").price if mode == "replica" else None),
            started_at=time.time(), log_file=str(log_file),
            state_file=str(state_file) if state_file else None, restored_block=restored,
            forwarder_pid=node.forwarder.pid if node.forwarder else None,
        )
        chain.info, chain.mode = info, mode
        C.checkpoint(chain)
        C.write_state(info)
    except BaseException:
        node.stop()
        raise
    if restored is not None:
        _note(f"restored the replica from {state_file} (saved at block {restored}): balances and pools as saved")
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


def fund(chain: C.Chain, address: str, eth: float | None = None, usdc: float | None = None) -> dict:
    """Set an address's ETH balance (anvil_setBalance) and USDC balance (write USDC's balances slot 9).

    Works the same on a mainnet fork: real USDC keeps `balances` at slot 9 behind its proxy.
    """
    if not chain.local:
        raise ChainError(f"refusing to fund on {chain.describe()}: only a local anvil node can set balances")
    address = checksum(address)
    for label, value in (("--eth", eth), ("--usdc", usdc)):
        if value is not None:
            _amount(label, value)
    if eth is None and usdc is None:
        raise ConfigError("nothing to fund: pass --eth and/or --usdc")
    if eth is not None:
        chain.rpc("anvil_setBalance", address, hex(int(round(eth * 10**18))))
    if usdc is not None:
        slot = mapping_slot(address, C.USDC_BALANCE_SLOT)
        chain.rpc("anvil_setStorageAt", C.USDC, slot, word(int(round(usdc * 10**6))))
    return get_portfolio(chain, address).model_dump()


class PrivateReplica:
    """A throwaway replica on a free port (benchmarks, tests): not recorded in the state file, always stopped
    (tied to this process, so even a killed caller cannot leak it).

    Loads the cached replica dump when there is one, so it starts in about a second.
    """

    def __init__(self, price: float | None = None, log_file: Path | None = None):
        self.price = float(price) if price is not None else default_seed_price()
        self.log_file = log_file
        self.node: C.NodeProcess | None = None
        self.chain: C.Chain | None = None

    def __enter__(self) -> C.Chain:
        port = C.free_port()
        cache = _replica_cache(self.price)
        self.node = C.launch_anvil(port, chain_id=1, load_state=cache if cache.exists() else None,
                                   log_file=self.log_file or trader_home() / "chain" / "private-anvil.log",
                                   detach=False)
        try:
            self.chain = C.Chain(f"http://127.0.0.1:{port}")
            if self.chain.rpc("eth_getCode", C.V2_PAIR, "latest") in ("0x", "0x0"):
                build_replica(self.chain, self.price)
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
