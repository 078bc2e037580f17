"""Online learning from the agent's own fills: replay store, prioritised replay, learner, promotion gate,
serving and rollback of the promoted model.

May import: rl.policy, rl.training, rl.envs, rl.metrics, trader_core. Never agent/ (the agent's loop calls in).
"""
