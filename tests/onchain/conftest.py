"""One real anvil replica for the whole session (TRADER_HOME in a tmp dir), always stopped at the end."""

from __future__ import annotations

import os
import signal
import time

import pytest

from trader_core.errors import DependencyMissing

CLEAN_ENV = ("TRADER_PRIVATE_KEY", "ETH_RPC_URL", "TRADER_RPC_URL", "TRADER_RISK_MAX_NOTIONAL_USD",
             "TRADER_RISK_MAX_PORTFOLIO_FRACTION", "TRADER_RISK_DAILY_LOSS_LIMIT_USD")


def _env(home) -> pytest.MonkeyPatch:
    mp = pytest.MonkeyPatch()
    mp.setenv("TRADER_HOME", str(home))
    for name in CLEAN_ENV:
        mp.delenv(name, raising=False)
    return mp


@pytest.fixture(scope="session")
def chain_home(tmp_path_factory):
    from onchain.artifacts import find_anvil

    try:
        find_anvil()
    except DependencyMissing as exc:
        pytest.skip(str(exc))
    home = tmp_path_factory.mktemp("trader_home")
    mp = _env(home)
    from onchain.manage import start_chain, stop_chain

    try:
        start_chain()
        mp.undo()
        yield home
    finally:
        mp = _env(home)
        stop_chain()  # whichever anvil the state file names now (a test may have restarted it)
        mp.undo()


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
