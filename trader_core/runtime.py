"""Process-wide runtime knobs and the toolkit's home directory."""

from __future__ import annotations

import os

from trader_core.paths import trader_home

__all__ = ["trader_home", "default_torch_threads", "configure_torch", "SMALL_MACHINE_CORES"]

SMALL_MACHINE_CORES = 4


def default_torch_threads() -> int:
    """1 thread on machines with <= 4 cores: SB3 DQN ran 10-17x slower with torch's default there."""
    if "TRADER_TORCH_THREADS" in os.environ:
        return max(1, int(os.environ["TRADER_TORCH_THREADS"]))
    cores = os.cpu_count() or 1
    return 1 if cores <= SMALL_MACHINE_CORES else min(cores, 8)


def configure_torch() -> None:
    """Apply the thread policy; call once before any torch work (training, inference, benchmarks)."""
    import torch

    torch.set_num_threads(default_torch_threads())
