"""Training: the typed run config, the SB3 algorithm registry (+ FastDQN), the training run,
ensembles, and the backtest runner that validation and the promotion gate share.

May import: rl.envs, rl.metrics, trader_core.
"""
