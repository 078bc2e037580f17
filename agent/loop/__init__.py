"""The autonomous loop (`trader run`): each tick's decision, paper or on-chain fills, and the glue to
online learning (rl.online).

May import: agent.turn, agent.market, rl, onchain, finetune, trader_core, prompts.
"""
