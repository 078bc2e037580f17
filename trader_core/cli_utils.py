"""Small helpers shared by every package's Typer commands.

The `--json` contract: stdout carries exactly one JSON document and nothing else. `print_json` writes it;
`stdout_to_stderr()` sends everything else a command prints (progress lines, Rich output, tqdm bars, a
library's `print`, native code writing to file descriptor 1) to stderr; `route_json_stdout(app)` runs every
command whose `--json` flag is on inside it, so no command has to remember.
"""

from __future__ import annotations

import json
import math
import os
import sys
from contextlib import contextmanager, redirect_stdout
from typing import Any, TextIO

# The real stdout while a --json command runs (stdout itself then points at stderr); innermost last.
_json_streams: list[TextIO] = []


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
    """Print stable, strict JSON on the real stdout (one document, nothing else), even inside
    `stdout_to_stderr()`."""
    out = _json_streams[-1] if _json_streams else sys.stdout
    if out is None:  # started without a stdout at all: like print(), write nothing
        return
    out.write(json.dumps(_clean(obj), indent=2, sort_keys=False) + "\n")
    out.flush()


def progress(message: str) -> None:
    """A progress or status line for the person watching: always stderr, so stdout holds only the result."""
    print(message, file=sys.stderr, flush=True)


def _flush(*streams) -> None:
    for stream in streams:
        if stream is None:  # the process started without it
            continue
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream has nothing left to lose
            pass


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # an in-process runner's captured stream (typer's CliRunner)
        return None


def _point_fd_at_stderr(real) -> tuple[int, int, TextIO] | None:
    """stdout's fd -> stderr; returns (that fd, a copy of the real one, a stream on the copy), or None where the
    streams are not real file descriptors (an in-process runner's captured streams, a closed one)."""
    fd, err_fd = _fileno(real), _fileno(sys.stderr)
    if fd is None or err_fd is None:
        return None
    try:
        saved = os.dup(fd)
    except OSError:
        return None
    try:
        os.dup2(err_fd, fd)
    except OSError:
        os.close(saved)
        return None
    return fd, saved, os.fdopen(saved, "w", encoding=getattr(real, "encoding", None) or "utf-8", closefd=True)


@contextmanager
def stdout_to_stderr():
    """Everything written to stdout in the block goes to stderr: Python's `sys.stdout` (print, Rich, a library's
    progress) and, when stdout is a real file descriptor, fd 1 itself (what C code prints). `print_json` in the
    block still writes to the real stdout."""
    real = sys.stdout
    _flush(real, sys.stderr)
    moved = _point_fd_at_stderr(real)
    _json_streams.append(moved[2] if moved else real)
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        _json_streams.pop()
        _flush(real, sys.stderr)
        if moved:
            fd, saved, json_out = moved
            _flush(json_out)
            os.dup2(saved, fd)
            json_out.close()


def json_flag(fn) -> str | None:
    """The name of `fn`'s parameter that is its `--json` option, or None."""
    import inspect

    for name, param in inspect.signature(fn).parameters.items():
        if "--json" in (getattr(param.default, "param_decls", None) or ()):
            return name
    return None


def with_json_stdout(fn):
    """`fn` (a Typer command) unchanged, except that with its `--json` flag on it runs in `stdout_to_stderr()`."""
    import functools

    flag = json_flag(fn)
    if flag is None or getattr(fn, "_json_stdout", False):
        return fn

    @functools.wraps(fn)  # Typer reads the options from the wrapped signature
    def command(*args, **kwargs):
        if not kwargs.get(flag):
            return fn(*args, **kwargs)
        with stdout_to_stderr():
            return fn(*args, **kwargs)

    command._json_stdout = True
    return command


def route_json_stdout(app) -> None:
    """Wrap every command of a Typer app and of the apps mounted in it with `with_json_stdout`."""
    for info in app.registered_commands:
        if info.callback is not None:
            info.callback = with_json_stdout(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            route_json_stdout(group.typer_instance)


def console():
    """A Rich console on stdout; imported lazily so `trader --help` stays instant."""
    from rich.console import Console

    # Piped output (CI logs, scripts) would otherwise wrap tables at 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=160)
