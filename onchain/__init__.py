"""On-chain layer: a managed Anvil (mainnet fork or offline replica), Uniswap prices and quotes, guarded swaps,
and a crash-safe SQLite trade journal. Never imports agent/ or rl/.
"""
