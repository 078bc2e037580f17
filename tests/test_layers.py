"""The whole project's import graph, imports inside functions included (they are for start-up speed, never to
hide a circle): packages depend one way (agent -> rl, onchain, finetune; finetune -> rl; everything -> trader_core,
prompts), the rooms (subpackages) inside a package depend one way too, floor by floor, no module is part of an
import circle, and no package folder holds more than 14 modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "rl", "onchain", "finetune", "trader_core", "prompts")
ALLOWED = {  # package -> the project packages it may import
    "agent": {"rl", "onchain", "finetune", "trader_core", "prompts"},
    "finetune": {"rl", "trader_core", "prompts"},
    "rl": {"trader_core"},
    "onchain": {"trader_core"},
    "trader_core": set(),
    "prompts": {"trader_core"},
}
# The floors inside each package, bottom first (README, "Architecture"). A room (subpackage) or a module at the
# package root may import its own floor and the floors below; anything not listed (the commands, the public face,
# a new room) stands on the top floor.
FLOORS = {
    "onchain": [{"onchain.networks", "onchain.models"}, {"onchain.node"}, {"onchain.venues"},
                {"onchain.execution"}, {"onchain.market"}, {"onchain.offline"}],
    "rl": [{"rl.metrics", "rl.paths"}, {"rl.envs"}, {"rl.training"}, {"rl.tuning", "rl.policy"},
           {"rl.backtest", "rl.online"}],
    "finetune": [{"finetune.artifacts", "finetune.formats", "finetune.plan_call", "finetune.plan_args"},
                 {"finetune.base_models"},
                 {"finetune.train"}, {"finetune.convert"}, {"finetune.llm_backends"},
                 {"finetune.data", "finetune.evaluation"}],
    "agent": [{"agent.market"}, {"agent.turn"}, {"agent.loop"}, {"agent.console"}],
}
MAX_MODULES = 14


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    """`a.b.c` -> the longest prefix that is a project module (an imported name may be a function)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _files() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    files = _files()
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [f"{base}.{a.name}" for a in node.names] or [base]
            for name in names:
                target = _resolve(name, modules)
                # `from pkg import x` names pkg/__init__ only when x is not a submodule
                if target and target != mod:
                    deps.add(target)
        graph[mod] = deps
    return graph


def room_of(module: str, packages: set[str]) -> str:
    """The unit the floors speak of: a module at a package's root is its own unit; a module in a room (a
    subpackage, at any depth) belongs to its innermost room."""
    if module in packages:
        return module
    parent = module.rpartition(".")[0]
    return parent if "." in parent else module


def room_graph() -> dict[str, set[str]]:
    files = _files()
    packages = {m for m, p in files.items() if p.name == "__init__.py"}
    rooms: dict[str, set[str]] = {}
    for mod, deps in import_graph().items():
        r = room_of(mod, packages)
        rooms.setdefault(r, set()).update(room_of(d, packages) for d in deps)
    return {r: deps - {r} for r, deps in rooms.items()}


def _floor(unit: str) -> int:
    floors = FLOORS.get(unit.split(".")[0], [])
    for i, floor in enumerate(floors):
        if unit in floor:
            return i
    return len(floors)


def test_packages_depend_one_way():
    bad = sorted(f"{mod} imports {dep}" for mod, deps in import_graph().items() for dep in deps
                 if dep.split(".")[0] != mod.split(".")[0] and dep.split(".")[0] not in ALLOWED[mod.split(".")[0]])
    assert bad == []


def test_rooms_import_only_their_floor_and_below():
    bad = sorted(f"{room} (floor {_floor(room)}) imports {dep} (floor {_floor(dep)})"
                 for room, deps in room_graph().items() for dep in deps
                 if dep.split(".")[0] == room.split(".")[0] and _floor(dep) > _floor(room))
    assert bad == []


def test_every_floor_names_a_real_room():
    rooms = set(room_graph())
    assert sorted(u for floors in FLOORS.values() for floor in floors for u in floor if u not in rooms) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_is_in_an_import_circle():
    assert _cycles(import_graph()) == []


def test_no_room_is_in_an_import_circle():
    assert _cycles(room_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_package_folder_holds_more_than_14_modules():
    folders = [d for pkg in (*PACKAGES, "tests") for d in [ROOT / pkg, *(ROOT / pkg).rglob("*")]
               if d.is_dir() and d.name != "__pycache__"]
    crowded = sorted(f"{d.relative_to(ROOT)}: {n}" for d in folders
                     if (n := len(list(d.glob("*.py")))) > MAX_MODULES)
    assert crowded == []


def test_rooms_are_read_as_the_floors_say():
    assert room_of("onchain.node.replicas.base", {"onchain", "onchain.node", "onchain.node.replicas"}) \
        == "onchain.node.replicas"
    assert room_of("onchain.api", {"onchain"}) == "onchain.api"
    assert room_of("onchain.node", {"onchain", "onchain.node"}) == "onchain.node"
    assert _floor("onchain.venues") > _floor("onchain.node") and _floor("agent.cli") == len(FLOORS["agent"])
