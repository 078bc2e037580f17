"""Many `trader` commands as real processes, without paying torch's, web3's and transformers' imports each time.

A server process imports the heavy third-party libraries once, then forks one child per command. The child is
the command's own process, exactly as the console script runs it: `agent.cli.main()` with its argv and
environment, stdin /dev/null, and file descriptors 1 and 2 on files of their own, so what a test reads is
everything the process wrote to stdout, from Python or from C. Project modules are imported in the child, after
its environment is set, as in a fresh `trader` process.

    with CliServer() as cli:
        result = cli.run(["price", "--json"], env={"TRADER_HOME": ...})
        json.loads(result.stdout)
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Imported once by the server: what makes a fresh `trader` process slow (seconds each on 2 cores).
PRELOAD = ("numpy", "pandas", "torch", "gymnasium", "stable_baselines3", "sb3_contrib", "web3", "transformers",
           "peft", "langchain_core", "optuna", "llama_cpp", "matplotlib.pyplot", "rich.console", "typer",
           "typer.rich_utils", "pydantic")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _child(request: dict) -> int:
    """In the forked child: become `trader ARGS` and return its exit code."""
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                            (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.argv = ["trader", *request["args"]]
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        if request.get("prelude"):  # "module:function", called first (a test's replacement of a heavy function)
            import importlib

            module, function = request["prelude"].split(":")
            getattr(importlib.import_module(module), function)()
        from agent.cli import main

        main()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a crash the CLI did not catch: report it like Python would
        import traceback

        traceback.print_exc()
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass


def serve() -> None:
    """The server loop: one JSON request per stdin line, one `{"returncode": N}` line back per request."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional extra that is not installed: its commands import it (and fail) alone
            pass
    requests, replies = sys.stdin.buffer, sys.stdout
    replies.write("ready\n")
    replies.flush()
    while line := requests.readline():
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os._exit(_child(request))
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


class CliServer:
    """A running server (a context manager); `run` executes one command in a fresh forked process."""

    def __init__(self, hang_s: float = 900):
        self.hang_s = hang_s  # guards a hang only, as HANG_S does for subprocesses
        self.tmp = tempfile.TemporaryDirectory(prefix="cli-server-")
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen([sys.executable, "-c", "from tests.cli_server import serve; serve()"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=root,
                                     start_new_session=True)
        self._reply()  # "ready": the imports are done
        self.count = 0

    def _reply(self) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], self.hang_s)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise RuntimeError("the CLI server died or hung" if ready else f"no reply in {self.hang_s:.0f} s")
        return line

    def run(self, args: list[str], env: dict[str, str] | None = None, unset: tuple[str, ...] = (),
            cwd: str | os.PathLike | None = None, prelude: str | None = None) -> Result:
        """`trader ARGS` in a new process with os.environ plus `env`, less `unset`; its whole stdout and stderr.
        `prelude` ("module:function") is called in that process before the CLI starts."""
        self.count += 1
        out, err = (Path(self.tmp.name) / f"{self.count}.{name}" for name in ("out", "err"))
        environ = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
        request = {"args": [str(a) for a in args], "env": environ,
                   "cwd": str(cwd or os.getcwd()), "stdout": str(out), "stderr": str(err), "prelude": prelude}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        code = json.loads(self._reply())["returncode"]
        return Result(code, out.read_text(errors="replace"), err.read_text(errors="replace"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.tmp.cleanup()

    def __enter__(self) -> CliServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
