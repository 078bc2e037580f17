"""Process-wide runtime knobs and the toolkit's home directory."""

from __future__ import annotations

import os

from trader_core.paths import trader_home

__all__ = ["trader_home", "default_torch_threads", "configure_torch", "SMALL_MACHINE_CORES"]

SMALL_MACHINE_CORES = 4


def default_torch_threads() -> int:
    """1 thread on machines with <= 4 cores: SB3 DQN ran 10-17x slower with torch's default there."""
    if "TRADER_TORCH_THREADS" in os.environ:
        return parse_thread_count(os.environ["TRADER_TORCH_THREADS"], "TRADER_TORCH_THREADS")
    cores = os.cpu_count() or 1
    return 1 if cores <= SMALL_MACHINE_CORES else min(cores, 8)


def parse_thread_count(text: str | int, name: str) -> int:
    """A thread count from the environment or a config: a whole number from 1 to 1024, else a ConfigError."""
    from trader_core.errors import ConfigError

    try:
        value = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of threads such as 1 or 4, got {text!r}") from None
    if not 1 <= value <= 1024:
        raise ConfigError(f"{name} must be between 1 and 1024 threads, got {value}")
    return value


def configure_torch(threads: int | None = None) -> None:
    """Apply the thread policy (or `threads`); call before any torch work (training, inference, benchmarks)."""
    import torch

    torch.set_num_threads(threads if threads is not None else default_torch_threads())
