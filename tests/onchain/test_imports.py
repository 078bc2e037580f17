"""`trader --help` stays instant: importing the CLI module pulls in none of the heavy chain libraries."""

from __future__ import annotations

import subprocess
import sys


def test_cli_import_is_light():
    code = ("import sys, onchain.cli; from onchain import cli; "
            "print(sorted(m for m in ('web3', 'eth_abi', 'eth_account', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_onchain_never_imports_rl_or_agent():
    code = ("import sys, onchain.api, onchain.bench, onchain.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rl', 'agent', 'finetune')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
