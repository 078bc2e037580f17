"""Secrets stay out of every process's argv, environment and log: a fork URL's credentials live only inside the
loopback forwarder; child processes start with a clean environment; a real key never signs on a local node
with a real chain id unless the user opts in."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from onchain.node import chain as C
from onchain.manage import fund
from onchain.execution.swap import execute_swap, propose_swap
from tests.conftest import HANG_S
from tests.onchain.conftest import JsonHandler, seeded_home, serving
from trader_core.errors import SwapRefused

pytestmark = pytest.mark.chain
RUN_TRADER = "from agent.cli import main; main()"
USER, PASSWORD, PATH_KEY, QUERY_KEY = "alice", "pa55-w0rd-XYZ", "v2/PATHKEY123", "QUERYKEY456"
REAL_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"  # not an anvil dev key


class _AuthenticatedUpstream(JsonHandler):
    """A hosted-RPC stand-in: answers only with the right basic auth, path and key, by forwarding to anvil."""

    upstream = ""
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        ok = self.headers.get("Authorization") == auth and self.path == f"/{PATH_KEY}?key={QUERY_KEY}"
        type(self).seen.append(ok)
        if ok:
            req = urllib.request.Request(self.upstream, body, {"Content-Type": "application/json"})
            data, status = urllib.request.urlopen(req, timeout=30).read(), 200
        else:
            data, status = b'{"error": "unauthorized"}', 401
        self.reply(data, status)


@pytest.fixture
def hosted_rpc(chain):
    handler = type("H", (_AuthenticatedUpstream,), {"upstream": chain.rpc_url, "seen": []})
    with serving(handler) as port:
        yield f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/{PATH_KEY}?key={QUERY_KEY}", handler


def _trader(home, *args, env=None):
    return subprocess.run([sys.executable, "-c", RUN_TRADER, *args], capture_output=True, text=True, timeout=HANG_S,
                          env={**os.environ, "TRADER_HOME": str(home), **(env or {})})


def _secret_free(blob: bytes | str) -> bool:
    text = blob.decode(errors="replace") if isinstance(blob, bytes) else blob
    return not any(s in text for s in (PASSWORD, "PATHKEY123", QUERY_KEY, REAL_KEY[2:]))


@pytest.mark.parametrize("via", ["flag", "ETH_RPC_URL"])
def test_fork_url_secrets_never_reach_anvil_argv_env_or_log(chain, chain_home, tmp_path, hosted_rpc, via):
    url, upstream = hosted_rpc
    home = seeded_home(chain_home, tmp_path)
    env = {"TRADER_PRIVATE_KEY": REAL_KEY, "TRADER_ALLOW_REAL_KEY_ON_LOCAL": "1"}
    args = ["chain", "up", "--json"] + (["--fork-url", url] if via == "flag" else [])
    if via == "ETH_RPC_URL":
        env["ETH_RPC_URL"] = url
    up = _trader(home, *args, env=env)
    try:
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout)
        assert info["mode"] == "fork" and info["chain_id"] == 1 and info["forwarder_pid"]
        assert all(upstream.seen) and upstream.seen  # anvil's reads went through, authenticated
        price = _trader(home, "price", "--json")
        assert price.returncode == 0 and json.loads(price.stdout)["price"] > 0
        for pid in (info["pid"], info["forwarder_pid"]):
            assert _secret_free(Path(f"/proc/{pid}/cmdline").read_bytes())
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert _secret_free(environ)
            assert b"TRADER_PRIVATE_KEY" not in environ and b"ETH_RPC_URL" not in environ
        assert b"127.0.0.1" in Path(f"/proc/{info['pid']}/cmdline").read_bytes()
        node_info = C.Chain(info["rpc_url"]).rpc("anvil_nodeInfo")
        assert _secret_free(json.dumps(node_info))  # anvil only knows the loopback forwarder
        for out in (up.stdout, up.stderr, price.stdout, price.stderr, json.dumps(info),
                    (home / "chain" / "state.json").read_text()):
            assert _secret_free(out)
    finally:
        down = _trader(home, "chain", "down")
        assert down.returncode == 0, down.stderr
    for log in (home / "chain").glob("*.log"):
        assert _secret_free(log.read_bytes()), log
    assert not C.pid_is_anvil(info["pid"]) and not C.pid_is_forwarder(info["forwarder_pid"])


def test_a_failed_fork_leaves_no_secret_and_no_process(chain_home, tmp_path):
    home = seeded_home(chain_home, tmp_path)
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:1/{PATH_KEY}?key={QUERY_KEY}"
    proc = _trader(home, "chain", "up", "--fork-url", url)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    for text in [proc.stdout, proc.stderr] + [p.read_text() for p in (home / "chain").glob("*.log")]:
        assert _secret_free(text)
    assert not (home / "chain" / "state.json").exists()


def test_anvil_inherits_no_secret_from_the_cli_environment(chain):
    environ = Path(f"/proc/{C.read_state().pid}/environ").read_bytes().split(b"\0")
    names = {e.split(b"=", 1)[0] for e in environ if e}
    assert names <= {b"PATH", b"HOME", b"LANG", b"LC_ALL", b"LC_CTYPE", b"TZ", b"TMPDIR", b"SYSTEMROOT",
                     C.HOME_MARKER.encode()}


def test_a_real_key_is_refused_on_a_local_chain_id_1_node_unless_opted_in(chain, journal, monkeypatch):
    from eth_account import Account

    real = Account.from_key(REAL_KEY)
    fund(chain, real.address, eth=5)
    monkeypatch.setenv("TRADER_PRIVATE_KEY", REAL_KEY)
    with pytest.raises(SwapRefused, match="real key.*chain id 1.*--allow-real-key") as err:
        propose_swap(chain, "sell", 0.1, "ETH", "v2", journal=journal)
    assert REAL_KEY[2:] not in str(err.value) and journal.list_trades() == []
    proposal = propose_swap(chain, "sell", 0.1, "ETH", "v2", journal=journal, allow_real_key=True)
    assert proposal.account == real.address and proposal.risk.ok
    monkeypatch.setenv("TRADER_ALLOW_REAL_KEY_ON_LOCAL", "1")
    assert execute_swap(chain, proposal, journal).status == "confirmed"


def test_a_real_key_through_the_cli_needs_the_flag(chain, chain_home):
    from eth_account import Account

    fund(chain, Account.from_key(REAL_KEY).address, eth=5)
    env = {"TRADER_PRIVATE_KEY": REAL_KEY}
    refused = _trader(chain_home, "swap", "sell", "0.05", "ETH", "--yes", env=env)
    assert refused.returncode == 1 and "--allow-real-key" in refused.stderr and refused.stderr.count("\n") == 1
    done = _trader(chain_home, "swap", "sell", "0.05", "ETH", "--yes", "--json", "--allow-real-key", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "confirmed"
    for out in (refused.stdout, refused.stderr, done.stdout, done.stderr):
        assert REAL_KEY[2:] not in out
