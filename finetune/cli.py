"""`trader finetune ...` and `trader bench llm`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Distil the policy into an LLM: data, LoRA, fuse, GGUF, Ollama.", no_args_is_help=True)
bench_commands: dict = {}
