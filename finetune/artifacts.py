"""Artifacts and their saved configs: how `all` tells finished, valid work from work to redo."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel


def config_matches(directory: str | Path, name: str, config: BaseModel) -> bool:
    """True when `directory/name` holds exactly this resolved config (same settings, same inputs)."""
    path = Path(directory) / name
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text()) == json.loads(config.model_dump_json())
    except (OSError, json.JSONDecodeError):
        return False
