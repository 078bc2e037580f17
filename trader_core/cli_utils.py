"""Small helpers shared by every package's Typer commands."""

from __future__ import annotations

import json
import math
from typing import Any


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf: emit null so downstream parsers never choke.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def print_json(obj: Any) -> None:
    """Print stable, strict JSON on stdout (one document, nothing else)."""
    print(json.dumps(_clean(obj), indent=2, sort_keys=False))


def console():
    """A Rich console on stderr-free stdout; imported lazily so `trader --help` stays instant."""
    import sys

    from rich.console import Console

    # Piped output (CI logs, scripts) would otherwise wrap tables at 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=160)
