"""Execution: guarded swaps (propose, execute), receipts -> fills, the crash-safe SQLite journal,
reconciliation with the node, execution quality of fills, risk limits, and the trading wallet.

May import: onchain.node, onchain.venues, onchain.networks, onchain.models, trader_core.
"""
