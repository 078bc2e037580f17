"""Adapters -> merged HF folder -> GGUF -> quantized GGUF, and trader-qwen-rl as every install
builds it (the embedded Qwen + the adapter shipped in finetune/adapters/).

May import: finetune.train, finetune.base_models, finetune.artifacts, trader_core.
"""
