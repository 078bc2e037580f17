"""The conversational trading agent: tools over rl/, onchain/ and finetune/, the chat REPL and the `trader` CLI.

Rooms, bottom to top: market.py (the policy's view of the market), turn/ (one conversational turn: planner,
safety, router, tools, grounding, facts, session), loop/ (`trader run`), console/ (the agent's commands, REPL,
benches); cli.py on top mounts every package's commands. The LLM backends are in finetune/llm_backends/.

May import: rl/, onchain/, finetune/, trader_core/, prompts/ (the top floor: nothing imports agent/).
"""
