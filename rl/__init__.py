"""Reinforcement learning core: market features, the Gymnasium trading env, SB3 training, backtests, policy signals.

Rooms, bottom to top: metrics.py and paths.py (leaves), envs/ (data, features, costs, rewards, the envs),
training/ (config, algorithms, training, ensembles, the backtest runner), tuning/ (`trader rl search`) beside
policy.py (a trained policy as the rest of the toolkit sees it), then backtest.py and online/, and cli.py, bench.py.

May import: trader_core/ only. Never imports agent/, finetune/ or onchain/.
"""
