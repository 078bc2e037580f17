"""Artifacts and the keys that say whether they are still valid.

A stage of `trader finetune all` is skipped only when its outputs exist and were made from the same inputs:
its key is a hash of its resolved config *and the content* of what it reads (files hashed, upstream stages
by their own keys), so changing a setting upstream (`--episodes`) or an input's content (`--base`, a retrained
policy, an edited YAML) redoes every stage downstream of it. File hashes are cached by (path, size, mtime) so
a multi-GB base model is read once, not on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pydantic import BaseModel

KEY_FILE = ".stage_keys.json"
_CHUNK = 8 << 20


def config_matches(directory: str | Path, name: str, config: BaseModel) -> bool:
    """True when `directory/name` holds exactly this resolved config (same settings, same inputs)."""
    path = Path(directory) / name
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text()) == json.loads(config.model_dump_json())
    except (OSError, json.JSONDecodeError):
        return False


def _digest_cache_path() -> Path:
    from trader_core.runtime import trader_home

    return trader_home() / "cache" / "digests.json"


def file_digest(path: str | Path) -> str:
    """sha256 of a file's content (memoised by path, size and mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    stamp = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    cache_path = _digest_cache_path()
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    if stamp in cache:
        return cache[stamp]
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    cache[stamp] = h.hexdigest()
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(cache_path)
    except OSError:
        pass  # a read-only home only costs re-hashing
    return cache[stamp]


def content_digest(path: str | Path) -> str:
    """sha256 over a file, or over every file of a folder (relative names + contents), hidden files skipped."""
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        return "missing:" + str(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.parts[-1:])):
        h.update(str(f.relative_to(path)).encode())
        h.update(file_digest(f).encode())
    return h.hexdigest()


def stage_key(config: BaseModel | dict, *inputs: str) -> str:
    """The key of a stage: its resolved config plus the digests/keys of everything it reads."""
    data = config.model_dump(mode="json") if isinstance(config, BaseModel) else config
    h = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
    for item in inputs:
        h.update(b"|" + item.encode())
    return h.hexdigest()


def read_key(directory: str | Path, stage: str) -> str | None:
    try:
        return json.loads((Path(directory) / KEY_FILE).read_text()).get(stage)
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def write_key(directory: str | Path, stage: str, key: str) -> None:
    path = Path(directory) / KEY_FILE
    try:
        keys = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        keys = {}
    keys[stage] = key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(keys, indent=2, sort_keys=True) + "\n")
