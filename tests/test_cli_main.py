"""`trader` itself: every failure, known or not, is one `error:` line (DEBUG=1 shows the traceback)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import HANG_S

HARNESS = r"""
import sys
import agent.cli as cli

@cli.app.command("boom")
def boom(kind: str):
    if kind == "bug":
        raise ZeroDivisionError("division by zero near https://user:pw@rpc.example/v2/KEY123?key=K9")
    if kind == "disk":
        raise OSError(28, "No space left on device", "/data/state.json")
    if kind == "sqlite":
        import sqlite3
        raise sqlite3.OperationalError("database is locked")
    if kind == "multiline":
        from trader_core.errors import ConfigError
        raise ConfigError("first line\nsecond line")

sys.argv = ["trader", *sys.argv[1:]]
cli.main()
"""


def run(*args, debug=False):
    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    if debug:
        env["DEBUG"] = "1"
    return subprocess.run([sys.executable, "-c", HARNESS, *args], capture_output=True, text=True, timeout=HANG_S,
                          env=env)


@pytest.mark.parametrize("args,code,needle", [
    (("boom", "bug"), 1, "unexpected ZeroDivisionError"),
    (("boom", "disk"), 1, "no space left on the device: /data/state.json"),
    (("boom", "sqlite"), 1, "the trade journal failed (database is locked)"),
    (("boom", "multiline"), 1, "first line second line"),
    (("boom",), 2, "Missing argument 'kind'"),
    (("boom", "bug", "--nope"), 2, "No such option"),
    (("nosuch",), 2, "No such command 'nosuch'"),
])
def test_every_failure_is_one_line(args, code, needle):
    proc = run(*args)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unexpected_error_hides_url_secrets_and_debug_shows_the_traceback():
    proc = run("boom", "bug")
    assert "DEBUG=1" in proc.stderr and "https://rpc.example" in proc.stderr
    assert "KEY123" not in proc.stderr and "pw@" not in proc.stderr and "K9" not in proc.stderr
    debug = run("boom", "bug", debug=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ZeroDivisionError" in debug.stderr


def test_help_still_works():
    proc = run("--help")
    assert proc.returncode == 0 and "Usage" in proc.stdout
