"""One real anvil replica for the whole session (TRADER_HOME in a tmp dir), always stopped at the end."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.conftest import CLEAN_ENV, clean_env, replica_chain
from trader_core.errors import DependencyMissing


@pytest.fixture(scope="session")
def chain_home(tmp_path_factory):
    with replica_chain(tmp_path_factory.mktemp("trader_home")) as home:
        yield home


@pytest.fixture(scope="session")
def base_home(tmp_path_factory):
    """TRADER_HOME of the Base replica: its cached build lives here, so `chain up --network base` loads it."""
    return tmp_path_factory.mktemp("base_home")


@pytest.fixture(scope="session")
def base_chain(base_home):
    """A private offline Base replica (chain id 8453, Uniswap V4) for the session; always stopped."""
    from onchain.artifacts import find_anvil

    try:
        find_anvil()
    except DependencyMissing as exc:
        pytest.skip(str(exc))
    from onchain.manage import PrivateReplica

    mp = clean_env(base_home)
    try:
        replica = PrivateReplica(network="base")
        chain = replica.__enter__()
    finally:
        mp.undo()
    try:
        yield chain
    finally:
        replica.__exit__()


@pytest.fixture(autouse=True)
def _home(request, monkeypatch, tmp_path):
    """Every onchain test runs with TRADER_HOME set: the session chain's home if it uses the chain."""
    if "chain_home" in request.fixturenames or "chain" in request.fixturenames:
        home = request.getfixturevalue("chain_home")
    else:
        home = tmp_path
    monkeypatch.setenv("TRADER_HOME", str(home))
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
def chain(chain_home):
    from onchain.chain import connect

    return connect()


@pytest.fixture
def journal(tmp_path):
    from onchain.journal import Journal

    j = Journal(tmp_path / "journal.sqlite")
    yield j
    j.close()


@pytest.fixture
def trader(chain):
    """The trading account (anvil dev account 0), funded fresh for each test."""
    from onchain.chain import dev_account
    from onchain.manage import fund

    address = dev_account(0).address
    fund(chain, address, eth=100.0, usdc=100_000.0)
    return address


def nonce(chain, address) -> int:
    return int(chain.rpc("eth_getTransactionCount", address, "latest"), 16)


def kill_hard(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if open(f"/proc/{pid}/stat").read().split()[2] == "Z":
            return
        time.sleep(0.02)


@pytest.fixture
def trader_funded(trader):
    return trader
