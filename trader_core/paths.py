"""Where files go, and writing them safely: the toolkit's home, output folders, atomic writes.

Every command that writes goes through these helpers, so a file where a folder should be, a read-only or full
disk, or a missing parent is one clear `TraderError` line, and a failed write leaves neither a half-written
file nor a stray temp file behind.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from trader_core.errors import ConfigError, StorageError

# errno -> what a user reads; anything else falls back to the OS's own wording
_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "file too large (file size limit reached)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a file is in the way",
    errno.EISDIR: "it is a folder",
    errno.ENOENT: "no such file or folder",
}


def os_reason(exc: OSError) -> str:
    """A short, human reason for an OSError (never its full repr)."""
    return _REASONS.get(exc.errno, exc.strerror or type(exc).__name__)


def storage_error(exc: OSError, action: str, path: str | Path) -> StorageError:
    """`cannot <action> <path>: <reason>` as a StorageError (chain with `from None` or `from exc`)."""
    hint = {errno.ENOSPC: "; free some space and run again", errno.EDQUOT: "; free some space and run again",
            errno.EROFS: "; point TRADER_HOME (or the path) at a writable folder",
            errno.EACCES: "; point TRADER_HOME (or the path) at a folder you can write"}.get(exc.errno, "")
    return StorageError(f"cannot {action} {path}: {os_reason(exc)}{hint}")


def trader_home() -> Path:
    """Where runs, chain state and caches live: $TRADER_HOME, else ~/.trader (created if missing).

    A file, a device (/dev/null) or an uncreatable path (under /proc) is a one-line ConfigError.
    """
    raw = os.environ.get("TRADER_HOME") or str(Path.home() / ".trader")
    home = Path(raw).expanduser()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"TRADER_HOME={raw} is a file, not a folder; set TRADER_HOME to a folder "
                          "(it is created if missing)") from None
    except OSError as exc:
        raise ConfigError(f"TRADER_HOME={raw} cannot be created ({os_reason(exc)}); set TRADER_HOME to a "
                          "writable folder") from None
    if not home.is_dir():
        raise ConfigError(f"TRADER_HOME={raw} is not a folder; set TRADER_HOME to a writable folder")
    return home


def ensure_dir(path: str | Path, what: str = "folder") -> Path:
    """mkdir -p with one-line errors; returns the folder as a Path."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is an existing file, not a folder; pass a folder path "
                          "(it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{what} {path} cannot be created: a part of its path is a file, not a folder") from None
    except OSError as exc:
        raise storage_error(exc, f"create {what}", path) from None
    return path


def prepare_out_dir(path: str | Path, what: str = "--out") -> Path:
    """The output folder of a command, ready to write into: created with its parents if missing.

    Refused with one line when it is an existing file, when a part of its path is a file, or when it cannot be
    written (read-only, no permission). Call it before any long work so a bad `--out` fails in a second.
    """
    path = ensure_dir(path, what)
    if not os.access(path, os.W_OK | os.X_OK):
        raise StorageError(f"cannot write into {what} {path}: permission denied or read-only; pass a folder "
                           "you can write")
    return path


def prepare_out_file(path: str | Path, what: str = "--out") -> Path:
    """An output file path, ready to be written: its folder created if missing; refused if it is a folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; pass a file path")
    prepare_out_dir(path.parent if str(path.parent) else Path("."), f"the folder of {what}")
    return path


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777  # an existing file keeps its mode
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux says it without changing it (os.umask would, for a moment, for every thread)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` all-or-nothing: a temp file in the same folder, fsync, rename.

    On any failure (full disk, read-only, interrupted) the old file is untouched and no temp file is left.
    """
    path = Path(path)
    ensure_dir(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, _mode_for(path))  # mkstemp makes 0600; keep what a plain open() would give
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise storage_error(exc, "write", path) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode())


def read_text_file(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file's content; a folder, a binary file or an unreadable path is one ConfigError line."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; pass a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise storage_error(exc, f"read {what}", path) from None
    if b"\0" in data[:8192]:
        raise ConfigError(f"{what} {path} is a binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None


def portable_path(path: str | Path) -> str:
    """`path` as a shipped report should record it: relative to the project (for the artifacts that ship in the
    package) or to the working folder, absolute only when it is under neither; a report committed to the repo must
    not carry the folder layout of the machine that wrote it."""
    p = Path(path).resolve()
    for root in (Path(__file__).resolve().parents[1], Path.cwd().resolve()):
        if p.is_relative_to(root):
            return str(p.relative_to(root)) or "."
    return str(path)
