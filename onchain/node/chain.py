"""The managed anvil process, its state file, and `Chain`: one connection the other modules share.

`trader chain up` writes trader_home()/chain/state.json (pid, port, chain id, mode); every later command and
the Python API find the node from it (or from an explicit --rpc-url). The replica's deployed state is dumped
under trader_home()/cache so the next `chain up` loads it in about a second instead of redeploying.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel

from onchain.node.locks import file_lock
from onchain.models import ChainHistory
from onchain.node.process import (HOME_MARKER, NodeProcess, child_env, find_processes_of_home, free_port, launch_anvil,
                             pid_is_anvil, pid_is_forwarder, pid_listens_on, port_is_free, stop_pid)
from onchain.node.rpc import LOOPBACK_HOSTS, Rpc, RpcError, mask_url
from trader_core.errors import ChainUnavailable, ConfigError
from trader_core.paths import atomic_write_bytes, atomic_write_text, trader_home

__all__ = ["HOME_MARKER", "NodeProcess", "child_env", "free_port", "launch_anvil", "pid_is_anvil", "pid_is_forwarder",
           "pid_listens_on", "port_is_free", "stop_pid", "find_orphans"]  # process helpers, re-exported

# Canonical mainnet addresses; the replica deploys real bytecode at exactly these.
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
V2_FACTORY = "0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f"
V2_ROUTER = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"
V2_PAIR = "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc"
V3_FACTORY = "0x1F98431c8aD98523631AE4a59f267346ea31F984"
V3_ROUTER = "0xE592427A0AEce92De3Edee1F18E0157C05861564"
V3_QUOTER = "0x61fFE014bA17989E743c5F6cB21bF9697530B21e"
V3_NPM = "0xC36442b4a4522E871399CD717aBDD847Ab11FE88"
V3_POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
V3_FEE = 500
USDC_BALANCE_SLOT = 9  # FiatTokenV1 `balances`; the replica token keeps the same layout
USDC_ALLOWANCE_SLOT = 10

# Where a replica keeps its identity (slot 0, set once when its seed state is built): anvil does not restore
# block 0 reliably from a state dump (its hash changed on a second restore), so the genesis hash alone cannot
# name a replica across restarts. keccak("rl-trader-agent chain identity")[-20:]; nothing else lives there.
IDENTITY_ADDRESS = "0x63DbBd367700E07EAa13B8cAb5b5Cc6ae83cF787"

# Anvil's public dev mnemonic ("test test ... junk"): account 0 trades, 8 arbitrages (replay), 9 provides liquidity.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
TRADER_ACCOUNT, ARB_ACCOUNT, LP_ACCOUNT = 0, 8, 9

Mode = Literal["replica", "fork", "external"]


class ChainInfo(BaseModel):
    """What `chain up` / `chain status --json` report; also the on-disk state file."""

    rpc_url: str
    pid: int | None
    chain_id: int
    mode: Mode
    port: int | None = None
    fork_url: str | None = None  # masked: scheme://host/***
    fork_block: int | None = None
    price: float | None = None  # the replica's seed price (USDC per ETH)
    network: str = "mainnet"  # onchain.networks name: mainnet (V2/V3) or base (V4)
    started_at: float | None = None
    log_file: str | None = None
    running: bool = True
    state_file: str | None = None  # the replica's saved state: loaded at start, written at checkpoints
    restored_block: int | None = None  # the saved state's head block when this node was started from it
    forwarder_pid: int | None = None  # the loopback forwarder that holds a fork URL's secrets
    history: ChainHistory | None = None  # the real market history baked into the replica (onchain.offline.history)


def state_path() -> Path:
    return trader_home() / "chain" / "state.json"


def read_state() -> ChainInfo | None:
    """The recorded chain; None if none (a garbage state file counts as none: `chain up` then finds the
    anvil it named, if any, as an orphan of this home)."""
    path = state_path()
    if not path.exists():
        return None
    try:
        return ChainInfo.model_validate_json(path.read_bytes())
    except (ValueError, OSError):
        return None


def write_state(info: ChainInfo) -> Path:
    return atomic_write_text(state_path(), info.model_dump_json(indent=2))


class Chain:
    """A connection to a node plus what we know about it (mode, locality, identity, dev accounts)."""

    def __init__(self, rpc_url: str, info: ChainInfo | None = None, timeout: float = 30.0):
        self.rpc_url = rpc_url
        self.rpc = Rpc(rpc_url, timeout=timeout)
        self.chain_id = int(self.rpc("eth_chainId"), 16)
        self.client_version = str(self.rpc("web3_clientVersion"))
        self.info = info
        self.mode: Mode = info.mode if info else "external"
        self._w3 = None
        self._metadata: dict | None = None
        self._node_id: str | None = None

    @property
    def local(self) -> bool:
        """A dev node (anvil) on this machine: the only place dev keys may sign."""
        host = urlsplit(self.rpc_url).hostname or ""
        return host in LOOPBACK_HOSTS and self.client_version.lower().startswith(("anvil", "hardhat", "ganache"))

    @property
    def w3(self):
        """A full web3.py Web3 for callers that want it (not used on the hot path)."""
        if self._w3 is None:
            from web3 import Web3

            self._w3 = Web3(Web3.HTTPProvider(self.rpc_url))
        return self._w3

    def metadata(self) -> dict:
        """anvil_metadata (instance id, fork info); {} on nodes that do not have it."""
        if self._metadata is None:
            try:
                self._metadata = dict(self.rpc("anvil_metadata") or {})
            except RpcError:
                self._metadata = {}
        return self._metadata

    @property
    def instance(self) -> str | None:
        """This node process's random instance id (anvil); a restarted node has a new one. None elsewhere."""
        return self.metadata().get("instanceId")

    @property
    def node_id(self) -> str:
        """Which chain this is: chain id + genesis + mode. The replica and a mainnet fork are both chain id 1;
        journal rows are matched to a node by this, never by chain id alone. The genesis is block 0's hash, or
        on a replica the identity written into its seed state (anvil may rebuild block 0 when it loads state)."""
        if self._node_id is None:
            genesis, marker = self.rpc.batch([("eth_getBlockByNumber", ["0x0", False]),
                                              ("eth_getStorageAt", [IDENTITY_ADDRESS, "0x0", "latest"])])
            anchor = marker if int(marker or "0x0", 16) else (genesis or {}).get("hash", "?")
            mode = self.mode
            if self.info is None and self.metadata().get("forkedNetwork"):
                mode = "fork"
            self._node_id = f"{self.chain_id}:{anchor}:{mode}"
        return self._node_id

    def call(self, to: str, data: str, block: str = "latest") -> str:
        return self.rpc("eth_call", {"to": to, "data": data}, block)

    def block_timestamp(self) -> int:
        """The chain's clock: the time the next block would be stamped (anvil's pending block follows its own
        clock, which may run years behind the wall clock on a replica with baked history, or ahead after a
        replay), never before the latest block."""
        try:
            blocks = self.rpc.batch([("eth_getBlockByNumber", ["latest", False]),
                                     ("eth_getBlockByNumber", ["pending", False])])
        except RpcError:  # a node without a pending block: its latest block is its clock
            blocks = [self.rpc("eth_getBlockByNumber", "latest", False)]
        return max(int(b["timestamp"], 16) for b in blocks if b)

    def describe(self) -> str:
        return f"chain id {self.chain_id} at {mask_url(self.rpc_url)} ({self.client_version.split('/')[0]})"


@functools.lru_cache(maxsize=None)
def dev_account(index: int = TRADER_ACCOUNT):
    """An anvil dev account (eth_account LocalAccount) from anvil's public mnemonic."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def connect(rpc_url: str | None = None, timeout: float = 30.0) -> Chain:
    """The chain at `rpc_url`, else $TRADER_RPC_URL, else the one `trader chain up` started.

    This is the bare connection; `onchain.execution.reconcile.connect` (what the CLI and `onchain.connect` use) also
    settles the journal's open rows against the node.
    """
    url = rpc_url or os.environ.get("TRADER_RPC_URL")
    info = None
    if url is None:
        info = read_state()
        if info is None:
            raise ChainUnavailable("no chain is running; run `trader chain up` (or pass --rpc-url)")
        url = info.rpc_url
    elif not urlsplit(url).scheme.startswith("http"):
        raise ConfigError(f"--rpc-url must be an http(s) URL, got {mask_url(url)}")
    else:
        state = read_state()
        info = state if state and state.rpc_url == url else None
    try:
        return Chain(url, info, timeout=timeout)
    except ChainUnavailable:
        if info is not None and not pid_is_anvil(info.pid):
            raise ChainUnavailable(
                f"the chain started by `trader chain up` (pid {info.pid}) is gone; run `trader chain up` again"
            ) from None
        raise


def find_orphans(exclude: set[int] | None = None) -> list[int]:
    """pids of anvils and forwarders that this TRADER_HOME started but its state file does not name (a CLI
    killed between launch and record, a garbage state file). Linux only; [] elsewhere."""
    recorded = read_state()
    named = {recorded.pid, recorded.forwarder_pid} if recorded else set()
    return find_processes_of_home((exclude or set()) | named)


def dump_state(chain: Chain, path: Path) -> Path:
    """anvil_dumpState (hex of gzipped JSON) -> a file `anvil --load-state` reads (written atomically)."""
    blob = chain.rpc("anvil_dumpState")
    raw = bytes.fromhex(blob[2:] if blob.startswith("0x") else blob)
    try:
        raw = gzip.decompress(raw)
    except OSError:
        pass  # older anvils return plain JSON
    return atomic_write_bytes(path, raw)


def checkpoint(chain: Chain) -> Path | None:
    """Save the managed replica's state to its state file (after swaps, funding, replays and at `chain down`),
    so a restart, or a crash after this point, keeps balances and history. A no-op for other nodes."""
    info = chain.info
    if info is None or info.mode != "replica" or not info.state_file or not chain.local:
        return None
    path = Path(info.state_file)
    with file_lock(path.with_name(path.name + ".lock")):  # a newer dump is never replaced by an older one
        return dump_state(chain, path)


def status() -> ChainInfo | None:
    """The state file's chain, with `running` refreshed (the RPC answers)."""
    info = read_state()
    if info is None:
        return None
    try:
        rpc = Rpc(info.rpc_url, timeout=2.0)
        rpc("eth_chainId")
        rpc.close()
        info.running = True
    except (ChainUnavailable, RpcError):
        info.running = False
    return info
