"""On-chain layer: a managed Anvil (fork or offline replica of mainnet, or of Base with Uniswap V4),
Uniswap prices and quotes, guarded swaps, and a crash-safe SQLite trade journal.

The public face is `onchain.api` (signatures in its docstring). Rooms, bottom to top: node/ (anvil process,
forwarder, JSON-RPC, artifacts, keys, locks), venues/ (V2/V3, V4: read, quote, encode a swap), execution/ (swap
guards, receipts, journal, reconcile, quality, risk, wallet), market/ (feed, replays), offline/ (the replicas, one
module per network, and the real history baked into them); beside them networks.py and models.py (leaves every room may use), and on top api.py, manage.py
(`chain up/down`), cli.py, bench.py.

May import: trader_core only (never rl/, finetune/, agent/). Nothing is imported here, so `trader --help` stays
instant.
"""
