"""Trading costs as pure functions: Uniswap fee, constant-product (x*y=k) price impact, gas.

Every function is plain arithmetic, so it works on Python floats (single env) and numpy arrays (batched env)
alike. Reserves are re-centred on the market price each bar: arbitrageurs keep the pool at the mid price,
so impact depends on trade size vs pool depth, not on our previous trades.
"""

from __future__ import annotations

DEFAULT_FEE = 0.003  # Uniswap V2 / V3 0.30% tier
# Order of magnitude of the real WETH/USDC pools' depth per side, in USD (V2 pair ~$30-60M TVL in 2023).
DEFAULT_POOL_DEPTH_USD = 25_000_000.0


def reserves(price, depth_usd):
    """Pool reserves (eth, usdc) centred on `price` with `depth_usd` of USDC on each side."""
    return depth_usd / price, depth_usd


def amount_out(amount_in, reserve_in, reserve_out, fee=DEFAULT_FEE):
    """Uniswap V2 getAmountOut: exact input, fee taken from the input (x*y=k)."""
    effective = amount_in * (1.0 - fee)
    return reserve_out * effective / (reserve_in + effective)


def amount_in_for_out(amount_out_wanted, reserve_in, reserve_out, fee=DEFAULT_FEE):
    """Uniswap V2 getAmountIn: input needed for an exact output (requires out < reserve_out)."""
    return reserve_in * amount_out_wanted / ((reserve_out - amount_out_wanted) * (1.0 - fee))


def buy_eth(usdc_in, price, depth_usd, fee=DEFAULT_FEE):
    """Spend `usdc_in` on ETH. Returns (eth_out, fee_usd, impact_usd)."""
    eth_res, usdc_res = reserves(price, depth_usd)
    eth_out = amount_out(usdc_in, usdc_res, eth_res, fee)
    fee_usd = usdc_in * fee
    impact_usd = usdc_in - fee_usd - eth_out * price  # what the curve took beyond the fee, at mid price
    return eth_out, fee_usd, impact_usd


def sell_eth(eth_in, price, depth_usd, fee=DEFAULT_FEE):
    """Sell `eth_in` ETH. Returns (usdc_out, fee_usd, impact_usd)."""
    eth_res, usdc_res = reserves(price, depth_usd)
    usdc_out = amount_out(eth_in, eth_res, usdc_res, fee)
    fee_usd = eth_in * price * fee
    impact_usd = eth_in * price - fee_usd - usdc_out
    return usdc_out, fee_usd, impact_usd


def buy_exact_eth(eth_out, price, depth_usd, fee=DEFAULT_FEE):
    """Buy exactly `eth_out` ETH (closing a short). Returns (usdc_in, fee_usd, impact_usd)."""
    eth_res, usdc_res = reserves(price, depth_usd)
    usdc_in = amount_in_for_out(eth_out, usdc_res, eth_res, fee)
    fee_usd = usdc_in * fee
    impact_usd = usdc_in - fee_usd - eth_out * price
    return usdc_in, fee_usd, impact_usd


def price_impact_bps(trade_usd, depth_usd):
    """Marginal price move of a constant-product pool for a trade of `trade_usd`, in basis points (no fee)."""
    return 1e4 * (1.0 - (depth_usd / (depth_usd + trade_usd)) ** 2)


def round_trip_cost(fee=DEFAULT_FEE, trade_usd=0.0, depth_usd=DEFAULT_POOL_DEPTH_USD):
    """Fraction of notional lost buying then selling at an unchanged mid price (fee + impact both ways)."""
    eth, _, _ = buy_eth(trade_usd or 1.0, 1.0, depth_usd, fee)
    usdc, _, _ = sell_eth(eth, 1.0, depth_usd, fee)
    return 1.0 - usdc / (trade_usd or 1.0)
