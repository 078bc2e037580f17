"""The venues: reading pools, quoting and encoding swaps. v2_v3.py: V2 reserves / V3 slot0,
Router02 and QuoterV2 quotes, portfolios, Swap events, and the per-venue dispatch of
get_price / get_quote; v4.py: the V4 pool key and id, StateView reads, V4Quoter quotes;
v4_swap.py: Universal Router calldata for V4 swaps and Permit2.

May import: onchain.node, onchain.networks, onchain.models, trader_core.
"""
