"""Config helpers: pydantic models loaded from a file + environment, saved next to every artifact.

Precedence (mlx-lm style): CLI flags > config file > environment (TRADER_*) > defaults.
The resolved config is written as JSON beside what it produced and read back by the next stage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from trader_core.errors import ConfigError
from trader_core.paths import atomic_write_text, read_text_file

M = TypeVar("M", bound=BaseModel)


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist; pass an existing .json/.yaml/.toml file")
    text = read_text_file(path, "config file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # parser errors differ per format; one line is what the user needs
        raise ConfigError(f"cannot parse config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(data).__name__}")
    return data


def _from_env(model: type[BaseModel], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in model.model_fields:
        key = f"{prefix}{name}".upper()
        if key in os.environ:
            out[name] = os.environ[key]
    return out


def resolve_config(
    model: type[M],
    overrides: dict[str, Any] | None = None,
    file: str | Path | None = None,
    env_prefix: str = "TRADER_",
) -> M:
    """Build `model` from env < file < overrides (None values in overrides mean 'not given')."""
    data: dict[str, Any] = _from_env(model, env_prefix)
    if file is not None:
        data.update(_read_file(Path(file)))
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(model, exc, source=file)) from exc


def validation_message(model: type[BaseModel], exc: ValidationError, source: str | Path | None = None) -> str:
    """The first problem of a pydantic ValidationError as one line naming the setting (and the file)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or model.__name__
    origin = f" in {source}" if source is not None else ""
    if first["type"] == "extra_forbidden":
        known = ", ".join(model.model_fields)
        return f"unknown setting {where!r}{origin}; known settings: {known}"
    return f"invalid setting {where!r}{origin}: {first['msg']} (got {first.get('input')!r})"


def save_config(config: BaseModel, directory: str | Path, name: str = "config.json") -> Path:
    """Write the resolved config beside an artifact (adapter_config.json style)."""
    path = Path(directory) / name
    return atomic_write_text(path, json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")


def load_config(model: type[M], directory: str | Path, name: str = "config.json") -> M:
    """Read back the config a previous stage saved; a missing or stale file is a one-line ConfigError."""
    path = Path(directory) / name
    if not path.exists():
        raise ConfigError(f"{path} is missing: {directory} was not produced by this toolkit or is incomplete")
    try:
        return model.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise ConfigError(f"{path} does not match {model.__name__}: {exc.errors()[0]['msg']}") from exc
