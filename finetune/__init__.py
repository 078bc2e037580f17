"""Fine-tune pipeline: distil the DQN policy (and the agent's `plan` tool call) into an LLM: data, LoRA (MLX or
PEFT), fuse, GGUF, quantize, Ollama; and `trader-qwen-rl`, built on every install from the embedded Qwen and
the adapter shipped in `finetune/adapters/trader-qwen-rl/`.

Rooms, bottom to top: formats.py, plan_call.py, artifacts.py (the contracts and stage keys), base_models/,
train/, convert/, llm_backends/ (every LLM backend, runtime and LangChain faces; the agent uses them too),
data/ and evaluation/, then pipeline.py, cli.py, bench.py.

Uses rl/ (the policy it distils); never imports agent/ or onchain/. Nothing heavy is imported here.

API for other packages (the agent):
- `finetune.convert.trader_model.ensure_trader_model(method="lora") -> TraderModel`: the built trader model (cached;
  rebuilt only when the base GGUF or the adapter change). Load it with
  `finetune.llm_backends.runtime.load_llama(model.gguf, model.lora)`; `model.spec` is its `gguf:` spec, `model.label` its name.
- `finetune.plan_call`: the planner contract. `plan_messages(text, context)` + `tools=[PLAN_TOOL]` is the request
  (rendered by the model's own chat template), `parse_plan(reply) -> PlanCall | None` reads the
  `<tool_call>` reply, `INTENTS`, `TRADE_INTENTS`, `PLAN_SCHEMA`.
- `finetune.formats.TraderState.from_signal(signal, eth, usdc)` -> `question(state)`: the trader model's question
  with the policy's whole observation, exactly as trained; `chat_messages(prompt)`, `parse_action(text)`,
  `SYSTEM_PROMPT`.
- `finetune.llm_backends.runtime`: the one LLM layer the agent shares: `chat_fn(spec)` (with per-call `temperature`/`max_tokens`
  overrides), `load_llama(path, lora, chat_format=..., ram_cache_mb=...)` (one cache of loaded GGUFs per process),
  `llm_threads`, `ollama_host`, `ollama_answers`, `ollama_model_size_b`, `size_from_label`, `public_address`.
- `finetune.pipeline.run_pipeline(PipelineConfig(...)) -> PipelineResult` (artifacts["gguf_quant"] is the model).
"""
