"""Native libraries' chatter goes to $TRADER_HOME/logs/native.log, never to the user's terminal.

llama.cpp (ggml) logs a screen of lines per model or LoRA load (`llama_model_loader`, `load_tensors`,
`CPU_REPACK`, ...) from C, and llama-cpp-python's own log callback prints its warnings to stderr even with
`verbose=False`. transformers, torch and tqdm add progress bars and advisory warnings. Three switches:

- `route_llama_logs()`: llama.cpp's log callback (`llama_log_set`, which sets ggml's too) writes to the log file;
  the last lines are kept, so a failed load still says why in one line (`last_llama_error`).
- `quiet_fds()`: file descriptors 1 and 2 point at the log file around a native call (what C prints straight to
  stdout/stderr, before or beside the callback).
- `quiet_terminal()`: for the commands a person watches (demo, chat, ask, finetune): transformers' and tqdm's
  progress bars off, Python warnings and torch's C++ warnings into the log file.

A real error is never swallowed: it surfaces as the command's one `error: ...` line.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

LOG_NAME = "native.log"
MAX_BYTES = 8 << 20  # past this, the log starts afresh (the previous one is kept as native.log.1)
_lock = threading.RLock()  # re-entrant: a warning logged while the file is opened must not deadlock
_sink: dict[str, Any] = {"path": None, "fh": None}
_recent: collections.deque[str] = collections.deque(maxlen=40)  # llama.cpp's last lines, for one-line errors
_partial: list[str] = []  # llama.cpp logs a line in pieces (level CONT): joined before it is kept
_callback: Any = None  # the ctypes callback must live as long as the library may call it


def log_path() -> Path:
    """$TRADER_HOME/logs/native.log (the folder is created)."""
    from trader_core.paths import ensure_dir, trader_home

    return ensure_dir(trader_home() / "logs", "log folder") / LOG_NAME


def _file() -> BinaryIO | None:
    """The open log file for the current TRADER_HOME (reopened when it changes, e.g. the demo's own home)."""
    try:
        path = log_path()
    except Exception:  # noqa: BLE001 - an unusable TRADER_HOME is reported by the command, not by logging
        return None
    if _sink["path"] != path:
        if _sink["fh"] is not None:
            _sink["fh"].close()
        try:
            if path.exists() and path.stat().st_size > MAX_BYTES:  # ~2,000 lines per model load: keep one old file
                path.replace(path.with_name(LOG_NAME + ".1"))
            _sink["fh"], _sink["path"] = open(path, "ab", buffering=0), path  # noqa: SIM115 - kept open on purpose
        except OSError:
            _sink["fh"], _sink["path"] = None, None
            return None
    return _sink["fh"]


def _keep(text: str) -> None:
    _partial.append(text)
    if text.endswith("\n"):
        line = "".join(_partial).strip()
        _partial.clear()
        if line:
            _recent.append(line)


def route_llama_logs() -> Path | None:
    """Send llama.cpp's and ggml's log lines to the log file from now on (idempotent); returns the file."""
    global _callback
    import llama_cpp

    with _lock:
        fh = _file()
        _recent.clear()  # what is kept from now on belongs to the load that follows
        if _callback is None:
            @llama_cpp.llama_log_callback
            def to_file(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
                try:
                    decoded = text.decode("utf-8", errors="replace") if text else ""
                    _keep(decoded)
                    if _sink["fh"] is not None:
                        _sink["fh"].write(decoded.encode())
                except Exception:  # noqa: BLE001 - an exception must never cross back into C
                    pass

            llama_cpp.llama_log_set(to_file, ctypes.c_void_p(0))
            _callback = to_file
        return _sink["path"] if fh is not None else None


# words of llama.cpp's failure lines; not "cannot"/"not ": its warnings use those ("cannot use buft CPU_REPACK")
_FAILURE_WORDS = ("error", "failed", "invalid", "unable", "unknown", "unsupported", "only supports")


def last_llama_error() -> str | None:
    """The first line llama.cpp logged since the last `route_llama_logs()` that reads like a failure: the cause
    ("this GGUF file is version ... but this software only supports up to version 3"), not the generic
    "failed to load model" that follows it. None when it logged none."""
    for line in _recent:
        low = line.lower()
        if any(word in low for word in _FAILURE_WORDS):
            return line[:200]
    return None


@contextmanager
def quiet_fds():
    """Point stdout and stderr (the file descriptors, so C code too) at the log file for the block."""
    with _lock:
        fh = _file()
    if fh is None:  # nowhere to write: stay as we are rather than lose a real error
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        saved = [(fd, os.dup(fd)) for fd in (1, 2)]
    except OSError:  # no such descriptor (a daemon, a closed stream): nothing to silence
        yield
        return
    try:
        for fd, _ in saved:
            os.dup2(fh.fileno(), fd)
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


_quiet_done = False


def quiet_terminal() -> None:
    """For commands a person watches: library progress bars off, warnings and torch's C++ logs to the file."""
    global _quiet_done
    if _quiet_done:
        return
    _quiet_done = True
    # read by transformers / huggingface_hub / torch when they are imported (they are imported lazily)
    for name, value in (("TRANSFORMERS_VERBOSITY", "error"), ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
                        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TORCH_CPP_LOG_LEVEL", "ERROR"),
                        ("TOKENIZERS_PARALLELISM", "false"), ("TQDM_DISABLE", "1")):
        os.environ.setdefault(name, value)
    quiet_transformers()
    logging.captureWarnings(True)  # warnings.warn(...) of any library becomes a log record...
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.handlers[:] = [_FileHandler()]  # ...written to the log file, not printed
    warnings_logger.propagate = False


def quiet_transformers() -> None:
    """transformers' info lines and progress bars (GGUF de-quantization, shard loading) off, if it is loaded."""
    if "transformers" not in sys.modules:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


class _FileHandler(logging.Handler):
    """A logging handler that writes to the current native log file (it follows TRADER_HOME)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            with _lock:
                fh = _file()
            if fh is not None:
                fh.write((self.format(record) + "\n").encode("utf-8", errors="replace"))
        except Exception:  # noqa: BLE001 - logging must never break a command
            self.handleError(record)
