"""agent/ has no import circle, counting imports inside functions too (they are for start-up speed, never to hide
a circle), and no module of agent/ (or of the LLM backends it uses, finetune/llm_backends/) writes another
object's private attributes."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "agent"


def _graph() -> dict[str, set[str]]:
    """agent's modules by their path under agent/ (`turn.safety`) -> the agent modules they import."""
    from tests.test_layers import import_graph

    return {mod.removeprefix("agent."): {d.removeprefix("agent.") for d in deps if d.startswith("agent.")}
            for mod, deps in import_graph().items() if mod.startswith("agent.")}


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
    assert graph["turn.safety"] == set()  # the leaf others build on (redact is in trader_core now)


def test_no_module_writes_another_objects_private_attributes():
    offenders = []
    for path in sorted([*AGENT.rglob("*.py"), *(ROOT / "finetune" / "llm_backends").glob("*.py")]):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\b(?!self\b)\w+\._[a-z]\w*\s*=[^=]", line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert offenders == []
