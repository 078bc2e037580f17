"""Prompt files (system prompt, trader question, planner, Modelfile template), loaded by name.

A prompt is a text file in this folder: `load_prompt("planner")` reads `planner.txt` (or `planner.md`,
`planner.j2`, or a file named exactly `Modelfile.template`). Variables are written `${name}`; that form was
chosen because it cannot collide with Ollama's Go templates (`{{ .System }}`, `$i`) or JSON examples
(`{"intent": ...}`) that prompts contain. `$$` is a literal dollar sign.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from trader_core.errors import ConfigError

PROMPTS_DIR = Path(__file__).parent
_SUFFIXES = (".txt", ".md", ".j2", "")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|(\$))")


def list_prompts() -> list[str]:
    """Names of every prompt file shipped in this folder."""
    names = set()
    for path in PROMPTS_DIR.iterdir():
        if path.is_file() and not path.name.startswith(("_", ".")) and path.suffix != ".py":
            names.add(path.stem if path.suffix in (".txt", ".md", ".j2") else path.name)
    return sorted(names)


def prompt_path(name: str) -> Path:
    for suffix in _SUFFIXES:
        path = PROMPTS_DIR / f"{name}{suffix}"
        if path.is_file():
            return path
    raise ConfigError(f"no prompt named {name!r} in {PROMPTS_DIR}; known prompts: {', '.join(list_prompts())}")


@lru_cache(maxsize=64)
def _read(path: Path, mtime: float) -> str:
    return path.read_text(encoding="utf-8")


def load_prompt(name: str) -> str:
    """The raw text of prompt `name` (placeholders left as `${var}`)."""
    path = prompt_path(name)
    return _read(path, path.stat().st_mtime)


def prompt_variables(name: str) -> list[str]:
    """The `${var}` placeholders prompt `name` needs, in order of first use."""
    seen: list[str] = []
    for match in _VAR.finditer(load_prompt(name)):
        if match.group(1) and match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


def render_prompt(name: str, **variables: object) -> str:
    """Fill prompt `name`; a missing variable is a one-line ConfigError naming it (extra ones are ignored)."""
    text = load_prompt(name)
    missing = [v for v in prompt_variables(name) if v not in variables]
    if missing:
        raise ConfigError(f"prompt {name!r} needs variable(s) {', '.join(missing)}; "
                          f"pass them to render_prompt({name!r}, ...)")

    def fill(match: re.Match) -> str:
        return "$" if match.group(2) else str(variables[match.group(1)])

    return _VAR.sub(fill, text)
