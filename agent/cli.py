"""`trader`: one console script; each package mounts its own command group.

Only typer is imported here: every heavy library (torch, web3, llama_cpp) is imported inside the
command that needs it, so `trader --help` stays instant. Known errors (`TraderError`) become one line
and exit code 1; DEBUG=1 shows the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from agent import commands as agent_commands
from finetune import cli as finetune_cli
from onchain import cli as onchain_cli
from rl import cli as rl_cli

app = typer.Typer(
    name="trader",
    help="RL-guided LLM trading agent: DQN policy, fine-tuned trader model, Uniswap on an Anvil fork.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks: printed ratios against a peer run in the same process.",
                        no_args_is_help=True)

app.add_typer(rl_cli.app, name="rl")
app.add_typer(onchain_cli.chain_app, name="chain")
app.add_typer(finetune_cli.app, name="finetune")
app.add_typer(bench_app, name="bench")

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
    from agent.demo import run_demo

    run_demo(quick=quick)


def main() -> None:
    from trader_core.errors import TraderError

    try:
        app()
    except TraderError as exc:
        if os.environ.get("DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
