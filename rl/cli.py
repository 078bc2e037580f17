"""`trader rl ...` and the RL benchmarks."""

from __future__ import annotations

import typer

app = typer.Typer(help="Train, backtest and query the DQN trading policy.", no_args_is_help=True)
bench_commands: dict = {}
