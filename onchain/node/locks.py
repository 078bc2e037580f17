"""File locks (flock) that serialise what must not interleave across processes: signing for one account on
one node (nonces), checkpoints of one chain's state, `chain up`/`chain down` of one home.

A lock held by a process that dies (even SIGKILL) is released by the kernel, so nothing stays locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from trader_core.errors import ChainError
from trader_core.paths import ensure_dir, storage_error


@contextmanager
def file_lock(path: str | Path, timeout: float = 120.0, what: str = "lock") -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing) for the `with` block."""
    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise storage_error(exc, f"create the {what}", path) from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ChainError(f"another trader process has held the {what} for over {timeout:.0f}s "
                                     f"({path}); wait for it to finish, or stop it") from None
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_dir() -> Path:
    """Per-user, machine-wide: two TRADER_HOMEs that trade one account on one node still take turns."""
    return Path(tempfile.gettempdir()) / f"trader-locks-{os.getuid()}"


@contextmanager
def account_lock(node_key: str, account: str, timeout: float = 120.0) -> Iterator[None]:
    """Serialise signing for `account` on the node `node_key` (nonce read -> sign -> journal -> send), and
    reconciliation of that account's open rows (never judged while a send is in flight)."""
    digest = hashlib.sha256(f"{node_key}|{account.lower()}".encode()).hexdigest()[:32]
    directory = _lock_dir()
    ensure_dir(directory)
    with file_lock(directory / f"{digest}.lock", timeout, what=f"signing lock of {account}"):
        yield


def signing_lock(chain, account: str, timeout: float = 120.0):
    """`account_lock` for a connected chain: keyed by its node identity and its process instance (or URL)."""
    return account_lock(f"{chain.node_id}|{chain.instance or chain.rpc_url}", account, timeout)
