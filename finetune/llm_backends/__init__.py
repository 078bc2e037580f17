"""Every LLM backend in one place: runtime.py (addresses, llama.cpp loading, model sizes, chat
functions for every caller), chat_models.py (the agent's `--llm auto|gguf:|ollama:|openai:|
mlx:` choice with fallback), the LangChain faces beside their runtimes (llamacpp_chat.py,
mlx_chat.py) and the Ollama Modelfile export. Adding a backend touches this folder only.

It sits in finetune/ because finetune uses the runtime too and may not import agent/.
May import: finetune.base_models, finetune.train, finetune.convert, finetune.plan_call /
formats, trader_core, prompts. Heavy libraries (llama_cpp, langchain, mlx) inside functions
or in modules only the backends import.
"""
