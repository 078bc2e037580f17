"""One conversational turn: the planner (forced plan call, safety review, deterministic tool runs,
a checked answer), the safety check of the user's own words, the keyword router, the tools,
grounding of answers, tool facts as sentences, and the session that builds an agent.

May import: agent.market, rl, onchain, finetune, trader_core, prompts. Never agent.loop/console.
"""
