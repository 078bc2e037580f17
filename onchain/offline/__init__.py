"""The offline replicas of mainnet and Base, one module per network (mainnet.py: WETH9 + Uniswap
V2/V3 from their real deployers; base.py: Uniswap V4 at Base's addresses), the periphery real
clients expect, history.py: real hourly history baked into a new replica through its own pools
(the market replays), and build.py: building either network, its seed-state cache and
`PrivateReplica`. It sits above market/ because baking history drives the replays.

May import: onchain.node, onchain.venues, onchain.execution, onchain.market, onchain.networks,
onchain.models, trader_core.
"""
