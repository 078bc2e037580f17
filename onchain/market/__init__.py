"""Market data from the chain: the live candle feed (Swap events), and the replays that walk a
replica along a real price path (V2/V3) or the real V4 swap sequence (Base).

May import: onchain.node, onchain.venues, onchain.execution, onchain.networks, onchain.models,
trader_core.
"""
