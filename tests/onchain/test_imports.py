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


def _module_graph(package: str) -> dict[str, set[str]]:
    """Every import between the package's modules (rooms included, named by their path under the package:
    `execution.journal`), at module level or inside functions (a function-level import hides a circle from
    Python, not from this test). The package's own `__init__` (a docstring) is left out."""
    from tests.test_layers import import_graph

    prefix = package + "."
    return {mod.removeprefix(prefix): {d.removeprefix(prefix) for d in deps if d.startswith(prefix)}
            for mod, deps in import_graph().items() if mod.startswith(prefix)}


def test_onchain_modules_import_one_way():
    graph = _module_graph("onchain")
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    # the ground rules hold too: the journal stores, it knows nothing of swaps or the market
    assert graph["execution.journal"] == set()
    assert "execution.swap" not in graph["venues.v2_v3"] and "execution.swap" not in graph["execution.receipts"]
