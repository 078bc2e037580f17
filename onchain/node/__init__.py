"""The node: the managed anvil process and its state file, the loopback forwarder that holds a fork
URL's secrets, the lean JSON-RPC client, the pinned npm artifacts, which key signs, and the
cross-process locks. `Chain` (chain.py) is the one connection every other room shares.

May import: trader_core, onchain.networks / onchain.models. Never venues, execution, market.
"""
