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
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel

from onchain.artifacts import find_anvil
from onchain.locks import file_lock
from onchain.rpc import LOOPBACK_HOSTS, Rpc, RpcError, mask_url
from trader_core.errors import ChainError, ChainUnavailable, ConfigError
from trader_core.paths import atomic_write_bytes, atomic_write_text, ensure_dir, trader_home

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
    started_at: float | None = None
    log_file: str | None = None
    running: bool = True
    state_file: str | None = None  # the replica's saved state: loaded at start, written at checkpoints
    restored_block: int | None = None  # the saved state's head block when this node was started from it
    forwarder_pid: int | None = None  # the loopback forwarder that holds a fork URL's secrets


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


def _cmdline(pid: int) -> list[bytes] | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead, only not yet reaped
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def pid_is_anvil(pid: int | None) -> bool:
    """True if `pid` is alive and is an anvil process (a recycled pid must never be killed)."""
    if not pid or not _alive(pid):
        return False
    cmdline = _cmdline(pid)
    if cmdline is None:
        return True  # no /proc (macOS): alive is the best we can tell
    return cmdline[0].endswith(b"anvil")


def pid_is_forwarder(pid: int | None) -> bool:
    """True if `pid` is alive and runs our fork forwarder script."""
    if not pid or not _alive(pid):
        return False
    cmdline = _cmdline(pid)
    return cmdline is None or any(arg.endswith(FORWARDER_SCRIPT.name.encode()) for arg in cmdline[1:3])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pid_listens_on(pid: int, port: int) -> bool:
    """Does process `pid` own the socket listening on 127.0.0.1:`port`? (Linux /proc; True where unknown.)"""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return not Path("/proc/self/fd").exists()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 is the socket inode
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A" and fields[9] in inodes:
                return True
    return False


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
    """The chain at `rpc_url`, else $TRADER_RPC_URL, else the one `trader chain up` started.

    This is the bare connection; `onchain.reconcile.connect` (what the CLI and `onchain.connect` use) also
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


# --- child processes: a clean environment, tied to this home, never holding a secret in argv ---------------

HOME_MARKER = "TRADER_CHAIN_OF"  # in each child's environment: which TRADER_HOME started it (orphan search)
_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")


def child_env() -> dict[str, str]:
    """What anvil and the forwarder inherit: locale and paths only (no TRADER_PRIVATE_KEY, no RPC URLs)."""
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env[HOME_MARKER] = str(trader_home().resolve())
    return env


def _die_with_parent() -> None:  # runs in the child between fork and exec
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(cmd: list[str], log_file: Path | None, detach: bool, **kw) -> subprocess.Popen:
    """Start a child in its own session. `detach=False` ties it to this process: on Linux the kernel sends it
    SIGTERM when we die, however we die (SIGKILL included), so a test run or a demo cannot leak it."""
    tie = None if detach or not sys.platform.startswith("linux") else _die_with_parent
    log = open(log_file, "ab") if log_file is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, stdout=kw.pop("stdout", log), stderr=log, env=child_env(),
                                start_new_session=True, preexec_fn=tie, **kw)
    finally:
        if log_file is not None:
            log.close()


def find_orphans(exclude: set[int] | None = None) -> list[int]:
    """pids of anvils and forwarders that this TRADER_HOME started but its state file does not name (a CLI
    killed between launch and record, a garbage state file). Linux only; [] elsewhere."""
    recorded = read_state()
    exclude = {p for p in (exclude or set()) | ({recorded.pid, recorded.forwarder_pid} if recorded else set()) if p}
    marker = f"{HOME_MARKER}={trader_home().resolve()}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc/self").exists() else []:
        pid = int(entry.name)
        if pid in exclude or pid == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ and (pid_is_anvil(pid) or pid_is_forwarder(pid)):
            found.append(pid)
    return sorted(found)


FORWARDER_SCRIPT = Path(__file__).with_name("forwarder.py")


def start_forwarder(upstream_url: str, detach: bool, log_file: Path) -> tuple[subprocess.Popen, str]:
    """The loopback forwarder holding `upstream_url` (handed over stdin): (process, http://127.0.0.1:PORT)."""
    import select

    proc = _spawn([sys.executable, "-I", str(FORWARDER_SCRIPT)], log_file, detach, stdin=subprocess.PIPE,
                  stdout=subprocess.PIPE)
    try:
        proc.stdin.write(upstream_url.encode() + b"\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        line = proc.stdout.readline().strip() if ready else b""
        if not line.isdigit():
            raise ChainError(f"the fork forwarder did not start (exit code {proc.poll()}); see {log_file}")
    except BaseException:
        _kill(proc)
        raise
    return proc, f"http://127.0.0.1:{int(line)}"


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the anvil process ------------------------------------------------------------------------------------

@dataclass
class NodeProcess:
    """An anvil this process launched, with the forwarder that holds its fork URL (if any)."""

    proc: subprocess.Popen
    forwarder: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """Stop anvil (SIGTERM, then SIGKILL) and its forwarder, and reap both."""
        stop_pid(self.proc.pid)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.forwarder is not None:
            _kill(self.forwarder)


def launch_anvil(
    port: int,
    chain_id: int | None = None,
    fork_url: str | None = None,
    fork_block: int | None = None,
    load_state: Path | None = None,
    state: Path | None = None,
    log_file: Path | None = None,
    detach: bool = True,
) -> NodeProcess:
    """Start anvil on 127.0.0.1:`port` in its own session and wait until it answers.

    `detach=True` (what `chain up` does): it outlives this process. A fork URL never reaches anvil's argv: a
    loopback forwarder holds it. The port must be free, and the process we started must be the one that
    answers on it (not another node that took the port).
    """
    if not port_is_free(port):
        raise ConfigError(f"port {port} on 127.0.0.1 is already in use by another process; pick another --port "
                          "or omit it for a free one")
    log_file = log_file or trader_home() / "chain" / "anvil.log"
    ensure_dir(log_file.parent)
    cmd = [find_anvil(), "--host", "127.0.0.1", "--port", str(port), "--accounts", "10", "--balance", "10000",
           "--disable-code-size-limit"]
    if chain_id is not None:
        cmd += ["--chain-id", str(chain_id)]
    forwarder = None
    if fork_url:
        forwarder, local_url = start_forwarder(fork_url, detach, log_file.with_name("forwarder.log"))
        cmd += ["--fork-url", local_url]
        if fork_block is not None:
            cmd += ["--fork-block-number", str(fork_block)]
    if state is not None:
        cmd += ["--state", str(state)]
    elif load_state is not None:
        cmd += ["--load-state", str(load_state)]
    try:
        proc = _spawn(cmd, log_file, detach, stdin=subprocess.DEVNULL)
    except BaseException:
        if forwarder is not None:
            _kill(forwarder)
        raise
    node = NodeProcess(proc, forwarder)
    if forwarder is not None:  # from now on the forwarder lives exactly as long as this anvil
        try:
            forwarder.stdin.write(f"{proc.pid}\n".encode())
            forwarder.stdin.close()
        except OSError:
            pass
    try:
        _wait_until_serving(proc, port, log_file, fork_url)
    except BaseException:
        node.stop()
        raise
    return node


def _wait_until_serving(proc: subprocess.Popen, port: int, log_file: Path, fork_url: str | None) -> None:
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
        except (ChainUnavailable, RpcError):
            time.sleep(0.05)
            continue
        finally:
            rpc.close()
        # something answers: make sure it is the process we started, not another node that holds the port
        if proc.poll() is None and pid_listens_on(proc.pid, port):
            _scrub_log(log_file, fork_url)
            return
        time.sleep(0.05)
    raise ChainUnavailable(f"anvil did not answer on 127.0.0.1:{port} within the timeout; see {log_file}")


def _scrub_log(log_file: Path, fork_url: str | None) -> str:
    """Defence in depth: anvil only ever sees the forwarder's loopback URL, but mask a fork URL if it shows."""
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


def stop_pid(pid: int | None, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL, an anvil or forwarder by pid; True if it was running (others are never touched)."""
    if not (pid_is_anvil(pid) or pid_is_forwarder(pid)):
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
        if not _alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


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
