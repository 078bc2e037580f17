"""`trader`: one console script; each package mounts its own command group.

Only typer is imported here: every heavy library (torch, web3, llama_cpp) is imported inside the
command that needs it, so `trader --help` stays instant. Every failure becomes one `error: ...` line: known
errors (`TraderError`) and OS/journal errors exit 1, usage errors exit 2, anything else is reported as a bug;
DEBUG=1 shows the traceback. SIGTERM/SIGHUP unwind like an exit, so `finally` blocks stop what was started.
With `--json`, stdout is the command's one JSON document: all else goes to stderr (`route_json_stdout`).
"""

from __future__ import annotations

import os
import sys

import typer

from agent.console import commands as agent_commands
from agent.mcp import command as mcp_command
from agent.dashboard.cli import dashboard
from finetune import cli as finetune_cli
from onchain import cli as onchain_cli
from rl import cli as rl_cli
from trader_core.cli_utils import route_json_stdout

app = typer.Typer(
    name="trader",
    help="RL-guided LLM trading agent: DQN policy, fine-tuned trader model, Uniswap on an Anvil fork.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks: printed ratios against a peer run in the same process.",
                        no_args_is_help=True)

def _policy_history_bars() -> int:
    """What `trader chain up` bakes into a new replica: the default policy's look-back plus a day (from its config
    alone); a policy that cannot be read must not stop a chain from starting, it gets none."""
    from agent.market import chain_history_bars
    from trader_core.errors import TraderError

    try:
        return chain_history_bars("default")
    except TraderError as exc:
        print(f"note: no market history baked into the replica: the default policy cannot be read ({exc})",
              file=sys.stderr)
        return 0


onchain_cli.set_history_bars_default(_policy_history_bars)

app.add_typer(rl_cli.app, name="rl")
app.add_typer(onchain_cli.chain_app, name="chain")
app.add_typer(finetune_cli.app, name="finetune")
app.add_typer(bench_app, name="bench")
app.command("mcp")(mcp_command.mcp)
app.command()(dashboard)

# Packages contribute top-level commands (e.g. `trader price`) and benchmarks (e.g. `trader bench env`).
for _module in (rl_cli, onchain_cli, finetune_cli, agent_commands):
    for _fn in getattr(_module, "top_level_commands", []):
        # a negative amount (`trader swap sell -1 ETH`) must reach the command's own validation and its
        # one-line error, not Click's "no such option"
        app.command(context_settings={"ignore_unknown_options": True})(_fn)
    for _name, _fn in getattr(_module, "bench_commands", {}).items():
        bench_app.command(_name)(_fn)


@app.command()
def demo(
    quick: bool = typer.Option(False, help="Shorter training and fewer steps (used by tests)."),
) -> None:
    """End-to-end session on embedded defaults: data, policy, backtest, signal (and more as it lands)."""
    from agent.console.demo import run_demo
    from trader_core.native_logs import quiet_terminal

    quiet_terminal()  # library logs and progress bars go to $TRADER_HOME/logs/native.log
    run_demo(quick=quick)


# Every command with a `--json` flag, when it is on, keeps stdout for its one JSON document: whatever else it (or a
# library, or native code) prints goes to stderr. After the last command is registered.
route_json_stdout(app)


def _stop_on_signals() -> None:
    """SIGTERM/SIGHUP unwind like an exit, so every `finally` runs (a chain the command started is stopped)."""
    import signal

    def _exit(signum, _frame):
        raise SystemExit(128 + signum)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _exit)


def _mask_urls(text: str) -> str:
    """Keep scheme, host and port of any URL in an unexpected error's text; userinfo, path and query may hold keys."""
    import re

    return re.sub(r"([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^\s/@'\"]*@)?([^\s/?#'\"]+)[^\s'\"]*", r"\1\2", text)


def _fail(message: str, code: int = 1) -> None:
    one_line = " ".join(message.split())  # the promise is one line, whatever the message holds
    print(f"error: {one_line}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    """Run the CLI; every failure is one `error: ...` line and exit code 1 (DEBUG=1 shows the traceback)."""
    import sqlite3

    from trader_core.errors import TraderError
    from trader_core.paths import os_reason

    _stop_on_signals()
    try:
        code = app(standalone_mode=False)  # usage errors come back here, to be printed as one line too
    except typer.Abort:  # end of input at a prompt
        _fail("aborted: no answer at the prompt")
    except typer.TyperException as exc:  # typer's (vendored click) usage errors
        if type(exc).__name__ == "NoArgsIsHelpError":  # `trader` or `trader chain` alone: the help is the answer
            from typer import rich_utils

            rich_utils.rich_format_error(exc)
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        where = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
        _fail(f"{exc.format_message().rstrip('.')}{where}", exc.exit_code)
    except Exception as exc:
        if os.environ.get("DEBUG"):
            raise
        if isinstance(exc, TraderError):
            _fail(str(exc))
        if isinstance(exc, BrokenPipeError):  # `trader trades | head`: the reader left; not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        if isinstance(exc, OSError):
            where = f": {exc.filename}" if exc.filename else ""
            _fail(f"{os_reason(exc)}{where}")
        if isinstance(exc, sqlite3.Error):
            _fail(f"the trade journal failed ({exc}); see `trader trades` or move $TRADER_HOME/journal.sqlite aside")
        _fail(f"unexpected {type(exc).__name__}: {_mask_urls(str(exc))[:300]} (a bug: rerun with DEBUG=1 for the "
              "traceback and report it)")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    if code == 130:  # typer turns Ctrl+C inside a command into exit code 130
        print("interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
