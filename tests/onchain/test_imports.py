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
    """Every import between the package's modules, at module level or inside functions (a function-level import
    hides a circle from Python, not from this test). The package's own lazy `__init__` is left out."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / package
    modules = {p.stem for p in root.glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name in modules:
        tree = ast.parse((root / f"{name}.py").read_text())
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                parts = target.split(".")
                if parts[0] == package and len(parts) > 1 and parts[1] in modules and parts[1] != name:
                    graph[name].add(parts[1])
    return graph


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
    assert graph["journal"] == set() and "swap" not in graph["uniswap"] and "swap" not in graph["receipts"]
