"""The trading environments and what they are made of: market data and features, costs (fees, price
impact, gas), reward presets, the Gymnasium env and its batched numpy twin.

May import: rl.metrics, trader_core.
"""
