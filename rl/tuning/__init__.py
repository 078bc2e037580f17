"""`trader rl search`: the Optuna study over the whole recipe, its search space, walk-forward folds,
the fold evaluation and the deflated Sharpe ratio.

May import: rl.training, rl.envs, rl.metrics, rl.paths, trader_core.
"""
