"""The managed anvil process, its state file, and `Chain`: one connection the other modules share.

`trader chain up` writes trader_home()/chain/state.json (pid, port, chain id, mode); every later command and
the Python API find the node from it (or from an explicit --rpc-url). The replica's deployed state is dumped
under trader_home()/cache so the next `chain up` loads it in about a second instead of redeploying.
"""

from __future__ import annotations

import functools
import gzip
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel

from onchain.artifacts import find_anvil
from onchain.rpc import LOOPBACK_HOSTS, Rpc, RpcError, mask_url
from trader_core.errors import ChainError, ChainUnavailable, ConfigError
from trader_core.runtime import trader_home

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


def state_path() -> Path:
    return trader_home() / "chain" / "state.json"


def read_state() -> ChainInfo | None:
    path = state_path()
    if not path.exists():
        return None
    try:
        return ChainInfo.model_validate_json(path.read_text())
    except ValueError:
        return None


def write_state(info: ChainInfo) -> Path:
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(info.model_dump_json(indent=2))
    tmp.replace(path)
    return path


def pid_is_anvil(pid: int | None) -> bool:
    """True if `pid` is alive and is an anvil process (a recycled pid must never be killed)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (macOS): alive is the best we can tell
    return cmdline.endswith(b"anvil")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chain:
    """A connection to a node plus what we know about it (mode, locality, dev accounts)."""

    def __init__(self, rpc_url: str, info: ChainInfo | None = None, timeout: float = 30.0):
        self.rpc_url = rpc_url
        self.rpc = Rpc(rpc_url, timeout=timeout)
        self.chain_id = int(self.rpc("eth_chainId"), 16)
        self.client_version = str(self.rpc("web3_clientVersion"))
        self.info = info
        self.mode: Mode = info.mode if info else "external"
        self._w3 = None

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

    def call(self, to: str, data: str, block: str = "latest") -> str:
        return self.rpc("eth_call", {"to": to, "data": data}, block)

    def block_timestamp(self) -> int:
        """Latest block time, never behind the wall clock (the next block anvil mines is stamped now)."""
        return max(int(self.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16), int(time.time()))

    def describe(self) -> str:
        return f"chain id {self.chain_id} at {mask_url(self.rpc_url)} ({self.client_version.split('/')[0]})"


@functools.lru_cache(maxsize=None)
def dev_account(index: int = TRADER_ACCOUNT):
    """An anvil dev account (eth_account LocalAccount) from anvil's public mnemonic."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def connect(rpc_url: str | None = None, timeout: float = 30.0) -> Chain:
    """The chain at `rpc_url`, else $TRADER_RPC_URL, else the one `trader chain up` started."""
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


# --- the anvil process ------------------------------------------------------------------------------------

def launch_anvil(
    port: int,
    chain_id: int | None = None,
    fork_url: str | None = None,
    fork_block: int | None = None,
    load_state: Path | None = None,
    state: Path | None = None,
    log_file: Path | None = None,
) -> subprocess.Popen:
    """Start anvil on 127.0.0.1:`port` in its own session (it outlives the CLI); wait until it answers."""
    cmd = [find_anvil(), "--host", "127.0.0.1", "--port", str(port), "--accounts", "10", "--balance", "10000",
           "--disable-code-size-limit"]
    if chain_id is not None:
        cmd += ["--chain-id", str(chain_id)]
    if fork_url:
        cmd += ["--fork-url", fork_url]
        if fork_block is not None:
            cmd += ["--fork-block-number", str(fork_block)]
    if state is not None:
        cmd += ["--state", str(state)]
    elif load_state is not None:
        cmd += ["--load-state", str(load_state)]
    log_file = log_file or trader_home() / "chain" / "anvil.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_file, "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    log.close()
    rpc = Rpc(f"http://127.0.0.1:{port}", timeout=2.0)
    deadline = time.monotonic() + (120 if fork_url else 60)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            lines = _scrub_log(log_file, fork_url).strip().splitlines() or ["(no output)"]
            first = next((ln for ln in lines if ln.startswith("Error")), "")
            msg = "; ".join(dict.fromkeys(x for x in (first, lines[-1].lstrip("- ")) if x))
            raise ChainError(f"anvil exited with code {proc.returncode}: {msg} (log: {log_file})")
        try:
            rpc("eth_chainId")
            rpc.close()
            _scrub_log(log_file, fork_url)
            return proc
        except (ChainUnavailable, RpcError):
            time.sleep(0.05)
    stop_pid(proc.pid)
    raise ChainUnavailable(f"anvil did not answer on 127.0.0.1:{port} within the timeout; see {log_file}")


def _scrub_log(log_file: Path, fork_url: str | None) -> str:
    """anvil prints the fork URL (API key included) in its banner and errors: mask it in the log."""
    text = log_file.read_text(errors="replace") if log_file.exists() else ""
    if fork_url:
        secret = fork_url.split("://", 1)[-1]
        masked = mask_url(fork_url)
        cleaned = text.replace(fork_url, masked).replace(secret, masked)
        if cleaned != text:
            with open(log_file, "r+") as fh:  # anvil appends (O_APPEND), so rewriting in place is safe
                fh.seek(0)
                fh.write(cleaned)
                fh.truncate()
        text = cleaned
    return text


def stop_pid(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM (anvil dumps --state on exit), then SIGKILL; True if it was running."""
    if not pid_is_anvil(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)  # reap if it is our child
            if done:
                return True
        except ChildProcessError:
            pass
        if not pid_is_anvil(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def dump_state(chain: Chain, path: Path) -> Path:
    """anvil_dumpState (hex of gzipped JSON) -> a file `anvil --load-state` reads."""
    blob = chain.rpc("anvil_dumpState")
    raw = bytes.fromhex(blob[2:] if blob.startswith("0x") else blob)
    try:
        raw = gzip.decompress(raw)
    except OSError:
        pass  # older anvils return plain JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)
    return path


def status() -> ChainInfo | None:
    """The state file's chain, with `running` refreshed (pid alive and the RPC answers)."""
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

