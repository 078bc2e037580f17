"""LoRA training: the typed run config, MLX (mlx_lm.lora) and the PEFT backend.

May import: finetune.base_models, finetune.formats / artifacts, trader_core.
"""
