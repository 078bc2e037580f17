"""The bad-input corpus: every category of issue 9 run through the real `trader` entry point as a subprocess.

Each case states its outcome: `refused` (exit 1, one `error:` line naming the problem), `usage` (exit 2, one
`error:` line), `declined` (exit 1, the proposal journalled `declined`), `warned` (exit 0 with a `warning:`
line) or `ok` (exit 0: the input is fine, e.g. an all-lowercase address). No case may print a traceback or
hang; some also check that nothing was left half-done (no anvil started, no temp file, nothing stopped).
The cases run in parallel (a few processes at a time) in one module fixture; each is then its own test.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import CLEAN_ENV, HANG_S, chain_processes_under, run_trader
from tests.onchain.conftest import seeded_home

pytestmark = [pytest.mark.chain, pytest.mark.slow]
RUN_TRADER = "from agent.cli import main; main()"
ROOT = os.geteuid() == 0
GOOD = "0x000000000000000000000000000000000000dEaD"
KEY_63 = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f36231"  # one digit short
REAL_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    expect: str  # refused | usage | declined | warned | ok
    needle: str = ""
    home: str = "chain"  # chain (the session chain's home), empty, or a prepared home named in HOMES
    env: dict = field(default_factory=dict)
    check: str | None = None  # a post-condition from CHECKS


def case(id, *args, expect="refused", needle="", home="chain", check=None, **env):
    return Case(id, tuple(args), expect, needle, home, env, check)


RISK_FILES = {  # name -> (file name, bytes)
    "folder": ("risk_dir", None),
    "binary": ("risk.bin", bytes(range(256)) * 4),
    "inf_toml": ("risk.toml", b"max_notional_usd = inf\n"),
    "big_json": ("risk.json", b'{"max_notional_usd": 1e999}'),
    "infinity_json": ("risk2.json", b'{"daily_loss_limit_usd": Infinity}'),
    "unknown_key": ("risk3.json", b'{"max_notional": 5}'),
    "bool": ("risk4.json", b'{"max_notional_usd": true}'),
    "bad_yaml": ("risk.yaml", b"max_notional_usd: [1, 2\n"),
    "list": ("risk5.json", b"[1, 2, 3]"),
    "fraction": ("risk6.json", b'{"max_portfolio_fraction": 2}'),
    "negative": ("risk7.json", b'{"daily_loss_limit_usd": -5}'),
}


def risk(name: str) -> str:
    return "{files}/" + RISK_FILES[name][0]


SWAP = ("swap", "sell", "0.01", "ETH", "--yes")
CASES = [
    # --- TRADER_HOME that cannot be a folder
    case("home-devnull-trades", "trades", needle="is a file", TRADER_HOME="/dev/null"),
    case("home-devnull-up", "chain", "up", needle="is a file", TRADER_HOME="/dev/null"),
    case("home-file-price", "price", needle="is a file", TRADER_HOME="{files}/a_file"),
    case("home-proc-status", "chain", "status", needle="cannot be created", TRADER_HOME="/proc/trader-home"),
    case("home-proc-swap", *SWAP, needle="cannot be created", TRADER_HOME="/proc/trader-home"),
    case("home-under-file", "trades", needle="cannot be created", TRADER_HOME="{files}/a_file/below"),
    # --- a read-only TRADER_HOME with a running chain: refuse writes, read what can be read, stop nothing
    case("ro-chain-down", "chain", "down", needle="read-only", home="ro", check="ro_chain_alive"),
    case("ro-chain-up", "chain", "up", needle="read-only", home="ro", check="ro_chain_alive"),
    case("ro-swap", *SWAP, needle="read-only", home="ro"),
    case("ro-trades", "trades", expect="ok", home="ro"),
    case("ro-price", "price", expect="warned", needle="journal not reconciled", home="ro"),
    case("ro-status", "chain", "status", expect="ok", home="ro"),
    # --- a full disk: one line, no stray temp file, no anvil left
    case("full-disk-up", "chain", "up", needle="cannot write", home="full", check="nothing_half_done"),
    # --- a damaged journal: commands refuse it, `chain up` starts nothing, reads still work with a warning
    *[case(f"{kind}-journal-trades", "trades", needle="trade journal", home=kind)
      for kind in ("garbage", "truncated", "schema")],
    *[case(f"{kind}-journal-swap", *SWAP, needle="trade journal", home=kind)
      for kind in ("garbage", "truncated", "schema")],
    *[case(f"{kind}-journal-up", "chain", "up", needle="trade journal", home=f"{kind}-norpc",
           check="nothing_half_done") for kind in ("garbage", "truncated", "schema")],
    case("garbage-journal-price", "price", expect="warned", needle="journal not reconciled", home="garbage"),
    # --- --risk-config files
    case("risk-folder", *SWAP, "--risk-config", risk("folder"), needle="is a folder"),
    case("risk-binary", *SWAP, "--risk-config", risk("binary"), needle="binary"),
    case("risk-missing", *SWAP, "--risk-config", "{files}/nope.json", needle="does not exist"),
    case("risk-inf-toml", *SWAP, "--risk-config", risk("inf_toml"), needle="max_notional_usd"),
    case("risk-1e999", *SWAP, "--risk-config", risk("big_json"), needle="max_notional_usd"),
    case("risk-infinity", *SWAP, "--risk-config", risk("infinity_json"), needle="daily_loss_limit_usd"),
    case("risk-unknown-key", *SWAP, "--risk-config", risk("unknown_key"), needle="unknown setting 'max_notional'"),
    case("risk-true", *SWAP, "--risk-config", risk("bool"), needle="not true/false"),
    case("risk-bad-yaml", *SWAP, "--risk-config", risk("bad_yaml"), needle="cannot parse"),
    case("risk-list", *SWAP, "--risk-config", risk("list"), needle="mapping"),
    case("risk-fraction-2", *SWAP, "--risk-config", risk("fraction"), needle="max_portfolio_fraction"),
    case("risk-negative-loss", *SWAP, "--risk-config", risk("negative"), needle="daily_loss_limit_usd"),
    # --- risk limits from the environment
    case("risk-env-inf", *SWAP, needle="max_notional_usd", TRADER_RISK_MAX_NOTIONAL_USD="inf"),
    case("risk-env-1e999", *SWAP, needle="max_notional_usd", TRADER_RISK_MAX_NOTIONAL_USD="1e999"),
    case("risk-env-nan", *SWAP, needle="max_notional_usd", TRADER_RISK_MAX_NOTIONAL_USD="nan"),
    case("risk-env-word", *SWAP, needle="max_notional_usd", TRADER_RISK_MAX_NOTIONAL_USD="lots"),
    case("risk-env-loss-inf", *SWAP, needle="daily_loss_limit_usd", TRADER_RISK_DAILY_LOSS_LIMIT_USD="inf"),
    case("risk-env-unknown", *SWAP, needle="TRADER_RISK_MAX_NOTIONAL", TRADER_RISK_MAX_NOTIONAL="100"),
    case("risk-env-true", *SWAP, needle="max_notional_usd", TRADER_RISK_MAX_NOTIONAL_USD="true"),
    # --- amounts and numbers
    case("swap-1e308", "swap", "sell", "1e308", "ETH", "--yes", needle="more than exists"),
    case("quote-1e308", "quote", "sell", "1e308", "ETH", needle="more than exists"),
    case("quote-buy-1e308-usdc", "quote", "buy", "1e308", "USDC", needle="more than exists"),
    case("swap-inf", "swap", "sell", "inf", "ETH", "--yes", needle="positive finite"),
    case("quote-nan", "quote", "sell", "nan", "ETH", needle="positive finite"),
    case("swap-negative", "swap", "sell", "-1", "ETH", "--yes", needle="positive finite"),
    case("swap-zero", "swap", "sell", "0", "ETH", "--yes", needle="positive finite"),
    case("quote-dust", "quote", "sell", "1e-30", "ETH", needle="smallest unit"),
    case("quote-word", "quote", "sell", "abc", "ETH", needle="not a number"),
    case("quote-doge", "quote", "sell", "1", "DOGE", needle="unknown asset"),
    case("quote-hold", "quote", "hold", "1", "ETH", needle="unknown side"),
    case("quote-v9", "quote", "sell", "1", "ETH", "--venue", "v9", needle="unknown venue"),
    case("quote-more-than-pool", "quote", "buy", "1000000", "ETH", needle="cannot deliver"),
    case("swap-slippage-0", *SWAP, "--max-slippage-bps", "0", needle="slippage"),
    case("swap-slippage-huge", *SWAP, "--max-slippage-bps", "99999999999999999999", needle="slippage"),
    case("swap-deadline-1e308", *SWAP, "--deadline", "1e308s", needle="--deadline"),
    case("swap-deadline-inf", *SWAP, "--deadline", "infs", needle="--deadline"),
    case("swap-deadline-0", *SWAP, "--deadline", "0s", needle="--deadline"),
    case("swap-deadline-word", *SWAP, "--deadline", "soon", needle="interval"),
    case("swap-json-needs-yes", "swap", "sell", "0.01", "ETH", "--json", needle="--yes"),
    case("trades-limit-negative", "trades", "--limit", "-1", needle="--limit"),
    case("trades-limit-huge", "trades", "--limit", "99999999999999999999", needle="--limit"),
    case("trades-limit-word", "trades", "--limit", "abc", expect="usage", needle="--limit"),
    case("trades-limit-0", "trades", "--limit", "0", expect="ok"),
    # --- addresses (web3.py's rules: a mixed-case address must carry its EIP-55 checksum)
    case("fund-bad-checksum", "chain", "fund", GOOD[:-4] + "dEAd", "--eth", "1", needle="checksum"),
    case("fund-no-0x", "chain", "fund", GOOD[2:], "--eth", "1", needle="0x"),
    case("fund-short", "chain", "fund", "0x1234", "--eth", "1", needle="not an Ethereum address"),
    case("fund-not-hex", "chain", "fund", "0x" + "zz" * 20, "--eth", "1", needle="not an Ethereum address"),
    case("fund-lowercase", "chain", "fund", GOOD.lower(), "--eth", "1", expect="ok"),
    case("fund-uppercase", "chain", "fund", "0x" + GOOD[2:].upper(), "--eth", "1", expect="ok"),
    case("portfolio-bad-checksum", "portfolio", "--address", GOOD[:-4] + "dEAd", needle="checksum"),
    case("fund-eth-inf", "chain", "fund", GOOD, "--eth", "inf", needle="--eth"),
    case("fund-eth-negative", "chain", "fund", GOOD, "--eth", "-1", needle="--eth"),
    case("fund-usdc-nan", "chain", "fund", GOOD, "--usdc", "nan", needle="--usdc"),
    case("fund-eth-1e308", "chain", "fund", GOOD, "--eth", "1e308", needle="--eth"),
    case("fund-nothing", "chain", "fund", GOOD, needle="nothing to fund"),
    # --- keys: shape errors never echo the key; a real key on chain id 1 needs an opt-in
    case("key-63-digits", *SWAP, needle="64 hex digits", TRADER_PRIVATE_KEY=KEY_63),
    case("key-not-hex", *SWAP, needle="64 hex digits", TRADER_PRIVATE_KEY="0x" + "zz" * 32),
    case("key-zero", *SWAP, needle="out of range", TRADER_PRIVATE_KEY="0x" + "00" * 32),
    case("key-real-on-chain-1", *SWAP, needle="--allow-real-key", TRADER_PRIVATE_KEY=REAL_KEY),
    case("key-63-portfolio", "portfolio", needle="64 hex digits", TRADER_PRIVATE_KEY=KEY_63),
    # --- chain up arguments
    case("up-state-missing-dir", "chain", "up", "--state", "/missing/dir/s.json", needle="does not exist"),
    case("up-state-folder", "chain", "up", "--state", "{files}", needle="is a folder"),
    case("up-port-80", "chain", "up", "--port", "80", needle="--port"),
    case("up-port-99999", "chain", "up", "--port", "99999", needle="--port"),
    case("up-price-0", "chain", "up", "--price", "0", needle="--price"),
    case("up-price-inf", "chain", "up", "--price", "inf", needle="--price"),
    case("up-price-negative", "chain", "up", "--price", "-5", needle="--price"),
    case("up-fork-block-alone", "chain", "up", "--fork-block", "5", needle="needs --fork-url"),
    case("up-eth-inf", "chain", "up", "--eth", "inf", needle="--eth"),
    case("up-usdc-negative", "chain", "up", "--usdc", "-1", needle="--usdc"),
    case("up-wallet-env-word", "chain", "up", needle="TRADER_WALLET_ETH", TRADER_WALLET_ETH="ten"),
    case("up-fresh-while-running", "chain", "up", "--fresh", needle="stop it first"),
    case("up-fork-url-ftp", "chain", "up", "--fork-url", "ftp://u:secret@host/KEY", needle="http(s)", home="empty",
         check="nothing_half_done"),
    case("up-fork-url-word", "chain", "up", "--fork-url", "notaurl", needle="http(s)", home="empty"),
    # --- RPC URLs
    case("rpc-url-ftp", "price", "--rpc-url", "ftp://x", needle="http(s)"),
    case("rpc-url-dead", "price", "--rpc-url", "http://127.0.0.1:1", needle="does not answer"),
    # --- replay
    case("replay-steps-0", "chain", "replay", "--steps", "0", needle="--steps"),
    case("replay-speed-negative", "chain", "replay", "--speed", "-1", needle="--speed"),
    case("replay-speed-inf", "chain", "replay", "--speed", "inf", needle="--speed"),
    # --- a swap nobody confirmed is journalled declined, never left proposed
    case("swap-no-tty-no-yes", "swap", "sell", "0.01", "ETH", expect="declined", needle="not a terminal",
         check="newest_row_declined"),
    # --- usage errors are one line too
    case("usage-missing-args", "swap", expect="usage", needle="Missing argument"),
    case("usage-no-command", "nosuch", expect="usage", needle="No such command"),
    case("usage-no-option", "chain", "up", "--bogus", expect="usage", needle="No such option"),
]


# --- prepared homes ----------------------------------------------------------------------------------------

def _journal_bytes(kind: str) -> bytes:
    import sqlite3
    import tempfile

    if kind == "garbage":
        return b"not a journal\n" * 100
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.sqlite"
        db = sqlite3.connect(path)
        if kind == "schema":
            db.execute("CREATE TABLE trades (x INTEGER, y TEXT)")
        else:
            db.execute("CREATE TABLE trades (id TEXT PRIMARY KEY, created_at REAL NOT NULL, "
                       "updated_at REAL NOT NULL, status TEXT NOT NULL)")
            db.executemany("INSERT INTO trades VALUES (?, 1, 1, 'proposed')", [(str(i),) for i in range(500)])
        db.commit()
        db.close()
        data = path.read_bytes()
    return data[: len(data) // 3] if kind == "truncated" else data


@contextmanager
def _read_only_view(source: Path, view: Path):
    """`view` shows `source` read-only (a bind mount as root; without root, the folders lose their w bit)."""
    view.mkdir(parents=True, exist_ok=True)
    if ROOT:
        subprocess.run(["mount", "--bind", str(source), str(view)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        try:
            yield view
        finally:
            subprocess.run(["umount", str(view)], check=False)
    else:
        folders = [source, source / "chain"]
        for f in folders:
            f.chmod(0o555)
        try:
            yield source
        finally:
            for f in folders:
                f.chmod(0o755)


@contextmanager
def _full_disk(path: Path):
    """A home on a full file system: a 600 KiB tmpfs as root; otherwise a 600 KiB file-size limit
    (EFBIG) applied to the command."""
    path.mkdir(parents=True, exist_ok=True)
    if ROOT and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(path)]).returncode == 0:
        try:
            yield None
        finally:
            subprocess.run(["umount", str(path)], check=False)
    else:
        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (600 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

        yield limit


def _base_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    return env


@dataclass
class Result:
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    home: Path
    check: str | None = None


def _run(c: Case, home: Path, files: Path, rpc_url: str | None, preexec=None) -> Result:
    env = {**_base_env(), "TRADER_HOME": str(home)}
    if rpc_url:
        env["TRADER_RPC_URL"] = rpc_url
    env.update({k: v.format(files=files) for k, v in c.env.items()})
    args = [a.format(files=files) for a in c.args]
    t0 = time.monotonic()
    if preexec is None:  # forked from the worker's CLI server: the same process start, without seconds of imports
        proc = run_trader(args, env=env)
        return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0, home)
    try:  # a limit set in the child before it starts (the full disk): a process of its own
        proc = subprocess.run([sys.executable, "-c", RUN_TRADER, *args], capture_output=True, text=True,
                              timeout=HANG_S, env=env, stdin=subprocess.DEVNULL, preexec_fn=preexec)
        return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0, home)
    except subprocess.TimeoutExpired as exc:
        return Result(None, str(exc.stdout or ""), "HANG", time.monotonic() - t0, home)


@pytest.fixture(scope="module")
def corpus(chain_home, tmp_path_factory):
    """Run every case once (four at a time) and hand back the results by case id."""
    from onchain.manage import start_chain, stop_chain

    rpc_url = json.loads((Path(chain_home) / "chain" / "state.json").read_text())["rpc_url"]
    base = tmp_path_factory.mktemp("corpus")
    files = base / "files"
    files.mkdir()
    (files / "a_file").write_text("x")
    for name, content in RISK_FILES.values():
        (files / name).mkdir() if content is None else (files / name).write_bytes(content)

    homes: dict[str, tuple[Path, str | None]] = {"chain": (Path(chain_home), None)}
    for kind in ("garbage", "truncated", "schema"):
        for suffix, url in (("", rpc_url), ("-norpc", None)):
            home = seeded_home(chain_home, base / f"{kind}{suffix}")
            (home / "journal.sqlite").write_bytes(_journal_bytes(kind))
            homes[f"{kind}{suffix}"] = (home, url)
    results: dict[str, Result] = {}
    with ExitStack() as stack:
        ro_source = seeded_home(chain_home, base / "ro_source")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TRADER_HOME", str(ro_source))
            ro_chain = start_chain(detach=False).model_dump()

        def _stop_ro_chain():
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("TRADER_HOME", str(ro_source))
                stop_chain(save=False)

        stack.callback(_stop_ro_chain)
        homes["ro"] = (stack.enter_context(_read_only_view(ro_source, base / "ro_view")), None)
        full = base / "full"
        preexec = stack.enter_context(_full_disk(full))
        (full / "cache").mkdir()
        for token in (Path(chain_home) / "cache").glob("ReplicaUSDC-*.json"):  # skip the compiler, not the build
            (full / "cache" / token.name).write_bytes(token.read_bytes())
        homes["full"] = (full, None)

        def run(c: Case) -> tuple[str, Result]:
            if c.home == "empty":
                home, url = seeded_home(chain_home, base / f"empty-{c.id}"), None
            else:
                home, url = homes[c.home]
            result = _run(c, home, files, url, preexec if c.home == "full" else None)
            if c.check:
                result.check = CHECKS[c.check](c, result, ro_chain)
            return c.id, result

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(pool.map(run, CASES))
    return results


# --- post-conditions ---------------------------------------------------------------------------------------

def _nothing_half_done(c: Case, r: Result, _) -> str | None:
    if (r.home / "chain" / "state.json").exists():
        return "a state file was written"
    if chain_processes_under(r.home):
        return f"chain processes were left running: {chain_processes_under(r.home)}"
    stray = [p for p in r.home.rglob("*") if p.name.endswith(".tmp")]
    return f"stray temp files: {stray}" if stray else None


def _ro_chain_alive(c: Case, r: Result, ro_chain: dict) -> str | None:
    from onchain.node.chain import pid_is_anvil

    return None if pid_is_anvil(ro_chain["pid"]) else "the chain was stopped although the command failed"


def _newest_row_declined(c: Case, r: Result, _) -> str | None:
    from onchain.execution.journal import Journal

    rows = Journal(r.home / "journal.sqlite", readonly=True).list_trades(limit=50)
    mine = [row for row in rows if row["status"] in ("declined", "proposed") and row["amount_in"] == 0.01]
    if not mine or mine[0]["status"] != "declined":
        return f"the unconfirmed proposal is {mine[0]['status'] if mine else 'missing'}, not declined"
    return None


CHECKS = {"nothing_half_done": _nothing_half_done, "ro_chain_alive": _ro_chain_alive,
          "newest_row_declined": _newest_row_declined}


# --- the assertions -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_case(corpus, c: Case):
    r = corpus[c.id]
    assert r.rc is not None, f"{c.id} hung (no answer in {HANG_S} s)"
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    others = [ln for ln in lines if not ln.startswith(("error: ", "warning: ", "note: "))]
    assert not others, f"unexpected stderr lines: {others}"
    if c.expect in ("refused", "declined", "usage"):
        assert r.rc == (2 if c.expect == "usage" else 1), (r.rc, r.stderr)
        assert len(errors) == 1 and c.needle in errors[0], r.stderr
    elif c.expect == "warned":
        assert r.rc == 0, r.stderr
        assert any(ln.startswith("warning: ") and c.needle in ln for ln in lines), r.stderr
    else:
        assert r.rc == 0 and not errors, r.stderr
    for secret in ("secret", REAL_KEY[2:], KEY_63[2:]):
        assert secret not in r.stdout + r.stderr
    assert r.check is None, r.check


def test_corpus_covers_every_category(corpus):
    outcomes = {}
    for c in CASES:
        outcomes[c.expect] = outcomes.get(c.expect, 0) + 1
    print(f"\nbad-input corpus: {len(CASES)} cases, outcomes {outcomes}, "
          f"slowest {max(r.seconds for r in corpus.values()):.1f} s")
    assert len(corpus) == len(CASES) == len({c.id for c in CASES})
