"""Output folders given on the command line: refused in one line before any work is done.

(A shared `trader_core.paths` helper is on its way; this is the rl/ check until then.)
"""

from __future__ import annotations

from pathlib import Path

from trader_core.errors import ConfigError


def prepare_out_dir(out: str | Path, flag: str = "--out") -> Path:
    """An output folder that exists or may be created: not an existing file, and its parent folder exists."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {out} is an existing file; pass a folder")
    if not path.exists() and not path.parent.is_dir():
        raise ConfigError(f"{flag} {out}: folder {path.parent} does not exist; create it first")
    return path
