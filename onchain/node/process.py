"""The processes `trader chain up` starts: anvil and the loopback forwarder that holds a fork URL.

They start with a clean environment (no keys, no RPC URLs) that names the TRADER_HOME which started them, so
orphans can be found; a port is used only if it is free, and only the process we started may answer on it;
`detach=False` ties a process to ours (Linux: the kernel stops it when we die, however we die).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from onchain.node.artifacts import find_anvil
from onchain.node.rpc import Rpc, RpcError, mask_url
from trader_core.errors import ChainError, ChainUnavailable, ConfigError
from trader_core.paths import ensure_dir, trader_home


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
    """No socket listens on 127.0.0.1:`port` (one in TIME_WAIT after a `chain down` does not count, as for anvil)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pid_listens_on(pid: int, port: int) -> bool:
    """Does process `pid` own the socket listening on 127.0.0.1:`port`? (Linux /proc; True where unknown.)"""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return not Path("/proc/self/fd").exists()
    inodes = set()
    for fd in fds:
        try:  # a busy node opens and closes connections all the time: an fd may be gone by now
            inodes.add(os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1])
        except OSError:
            continue
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


# --- child processes: a clean environment, tied to this home, never holding a secret in argv ---------------

HOME_MARKER = "TRADER_CHAIN_OF"  # in each child's environment: which TRADER_HOME started it (orphan search)
PRIVATE_MARKER = "TRADER_PRIVATE_CHAIN_OF"  # the same for a private node (PrivateReplica): never an orphan
_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")


def child_env(managed: bool = True) -> dict[str, str]:
    """What anvil and the forwarder inherit: locale and paths only (no TRADER_PRIVATE_KEY, no RPC URLs), plus
    which home started it (a private node, e.g. a PrivateReplica, under its own marker: it is no orphan)."""
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env[HOME_MARKER if managed else PRIVATE_MARKER] = str(trader_home().resolve())
    return env


def _die_with_parent() -> None:  # runs in the child between fork and exec
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(cmd: list[str], log_file: Path | None, detach: bool, managed: bool = True, **kw) -> subprocess.Popen:
    """Start a child in its own session. `detach=False` ties it to this process: on Linux the kernel sends it
    SIGTERM when we die, however we die (SIGKILL included), so a test run or a demo cannot leak it."""
    tie = None if detach or not sys.platform.startswith("linux") else _die_with_parent
    log = open(log_file, "ab") if log_file is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, stdout=kw.pop("stdout", log), stderr=log, env=child_env(managed),
                                start_new_session=True, preexec_fn=tie, **kw)
    finally:
        if log_file is not None:
            log.close()


def find_processes_of_home(exclude: set[int] | None = None) -> list[int]:
    """pids of live anvils and forwarders this TRADER_HOME started, except `exclude`. Linux only; [] elsewhere."""
    exclude = {p for p in (exclude or set()) if p}
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
    port: int = 0  # where it serves: http://127.0.0.1:{port}

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


# A free port found by binding port 0 is free only until the socket closes: another process (a parallel test, a
# node being started elsewhere) can take it before anvil binds it. anvil then exits with "Address in use".
_PICK_ATTEMPTS = 5


def launch_anvil(
    port: int | None,
    chain_id: int | None = None,
    fork_url: str | None = None,
    fork_block: int | None = None,
    load_state: Path | None = None,
    state: Path | None = None,
    log_file: Path | None = None,
    detach: bool = True,
    managed: bool = True,
    timestamp: int | None = None,
) -> NodeProcess:
    """Start anvil on 127.0.0.1:`port` (None: a free one, picked again if another process takes it before
    anvil binds it) in its own session and wait until it answers; the node's `port` says where it serves.

    `detach=True` (what `chain up` does): it outlives this process. A fork URL never reaches anvil's argv: a
    loopback forwarder holds it. The port must be free, and the process we started must be the one that
    answers on it (not another node that took the port). `managed=False` (PrivateReplica: tied to its owner,
    never recorded) leaves it out of this home's orphan sweep, so `chain up`/`down` never stop it.
    `timestamp`: the genesis block's time; the node's clock starts there (a replica that bakes past history).
    """
    args = (chain_id, fork_url, fork_block, load_state, state, log_file, detach, managed, timestamp)
    if port is not None:
        return _launch_anvil_on(port, *args)
    for attempt in range(_PICK_ATTEMPTS):
        try:
            return _launch_anvil_on(free_port(), *args)
        except (ChainError, ConfigError) as exc:
            if attempt + 1 == _PICK_ATTEMPTS or not _lost_the_port(exc):
                raise
    raise AssertionError("unreachable")


def _lost_the_port(exc: Exception) -> bool:
    """The picked port was taken meanwhile: before our check, or before anvil bound it (EADDRINUSE)."""
    text = str(exc).lower()
    return any(s in text for s in ("already in use", "address in use", "os error 98"))


def _launch_anvil_on(port: int, chain_id: int | None, fork_url: str | None, fork_block: int | None,
                     load_state: Path | None, state: Path | None, log_file: Path | None, detach: bool,
                     managed: bool, timestamp: int | None) -> NodeProcess:
    if not port_is_free(port):
        raise ConfigError(f"port {port} on 127.0.0.1 is already in use by another process; pick another --port "
                          "or omit it for a free one")
    log_file = log_file or trader_home() / "chain" / "anvil.log"
    ensure_dir(log_file.parent)
    cmd = [find_anvil(), "--host", "127.0.0.1", "--port", str(port), "--accounts", "10", "--balance", "10000",
           "--disable-code-size-limit"]
    if chain_id is not None:
        cmd += ["--chain-id", str(chain_id)]
    if timestamp is not None:
        cmd += ["--timestamp", str(int(timestamp))]
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
        proc = _spawn(cmd, log_file, detach, managed, stdin=subprocess.DEVNULL)
    except BaseException:
        if forwarder is not None:
            _kill(forwarder)
        raise
    node = NodeProcess(proc, forwarder, port)
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
