"""agent/ has no import circle, counting imports inside functions too (they are for start-up speed, never to hide
a circle), and no module writes another object's private attributes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in AGENT.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agent."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names if a.name.startswith("agent.")}
        graph[path.stem] = deps - {path.stem}
    return graph


def test_agent_modules_import_one_way():
    graph = _graph()
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        for dep in sorted(graph.get(node, ())):
            if dep in stack:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif len(stack) < len(graph):
                visit(dep, stack + [dep])

    for start in graph:
        visit(start, [start])
    assert cycles == []
    assert graph["safety"] == set() and graph["redact"] == set()  # the leaves others build on


def test_no_module_writes_another_objects_private_attributes():
    offenders = []
    for path in AGENT.glob("*.py"):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\b(?!self\b)\w+\._[a-z]\w*\s*=[^=]", line):
                offenders.append(f"{path.name}:{i}: {line.strip()}")
    assert offenders == []
