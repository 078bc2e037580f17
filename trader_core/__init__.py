"""Ground floor shared by every package: the exception tree, config helpers, runtime knobs, bundled data.

It imports nothing heavy and nothing from agent/, rl/, onchain/ or finetune/, so every package may use it
without breaking the one-way dependency rule (agent -> finetune -> rl; agent -> onchain).
"""

from trader_core.errors import TraderError

__all__ = ["TraderError"]
