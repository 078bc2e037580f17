"""`trader chain ...`, the market commands (`trader price|quote|swap|portfolio|trades`) and `trader bench chain`."""

from __future__ import annotations

import typer

chain_app = typer.Typer(help="Run a local Anvil chain (mainnet fork or offline replica).", no_args_is_help=True)
top_level_commands: list = []
bench_commands: dict = {}
