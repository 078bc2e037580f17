"""What a user types: the agent's `trader` commands (chat, ask, run, signal, demo), the REPL, and
`trader bench agent|learn`. Parsing and presentation; the work is in the rooms below.

May import: agent.turn, agent.loop, agent.market, rl, onchain, finetune, trader_core.
"""
