"""Reinforcement learning core: market features, the Gymnasium trading env, SB3 training, backtests, policy signals.

Never imports agent/ or onchain/.
"""
