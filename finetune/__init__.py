"""Fine-tune pipeline: distil the DQN policy into chat data, LoRA-tune (MLX or PEFT), fuse, GGUF, quantize, Ollama.

Uses rl/ (the policy it distils); never imports agent/ or onchain/. Nothing heavy is imported here.

API for other packages (the agent's `ask_trader_model`):
- `finetune.formats.question(state) -> str`: the seed's question for a state dict (price, volume, volatility,
  price_change, eth, usdc), exactly as the model was trained on it.
- `finetune.formats.chat_messages(prompt) -> list[dict]`: system + user messages for the request.
- `finetune.formats.parse_action(text) -> "BUY" | "SELL" | "HOLD" | None`: the last RECOMMENDATION line.
- `finetune.formats.SYSTEM_PROMPT`: the system prompt used in training and in the Modelfile.
- `finetune.pipeline.run_pipeline(PipelineConfig(...)) -> PipelineResult` (artifacts["gguf_quant"] is the model).
"""
