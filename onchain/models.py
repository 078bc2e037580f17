"""Typed results of the on-chain API (amounts in token units: ETH and USDC, not wei)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Venue = Literal["v2", "v3", "v4"]  # v4: Base only (the native-ETH/USDC pool)
Side = Literal["buy", "sell"]  # of ETH: buy = USDC -> ETH, sell = ETH -> USDC
Asset = Literal["ETH", "USDC"]


class PriceQuote(BaseModel):
    venue: Venue
    price: float = Field(description="USDC per ETH, mid price from V2 reserves, V3 slot0 or V4 StateView")
    block: int | None = None


class PoolInfo(BaseModel):
    venue: Venue
    address: str
    price: float
    fee_bps: float
    eth_reserve: float | None = Field(None, description="V2: WETH reserve")
    usdc_reserve: float | None = Field(None, description="V2: USDC reserve")
    liquidity: int | None = Field(None, description="V3/V4: in-range liquidity L")
    tick: int | None = None


class Quote(BaseModel):
    venue: Venue
    side: Side
    asset_in: Asset
    asset_out: Asset
    amount_in: float
    amount_out: float
    price: float = Field(description="execution price, USDC per ETH")
    spot_price: float
    price_impact_bps: float = Field(description="vs the mid price after the LP fee")
    fee_bps: float
    amount_in_raw: int
    amount_out_raw: int


class Portfolio(BaseModel):
    address: str
    eth: float
    weth: float
    usdc: float
    price: float | None = None
    value_usd: float | None = None


class RiskVerdict(BaseModel):
    ok: bool
    reasons: list[str] = []


class SwapProposal(BaseModel):
    id: str
    chain_id: int
    account: str
    quote: Quote
    min_amount_out: float
    min_amount_out_raw: int
    max_slippage_bps: int
    deadline: int = Field(description="unix time (chain clock) after which the router reverts")
    price_impact_bps: float
    notional_usd: float
    gas_estimate: int | None
    gas_limit: int | None
    needs_approval: bool = False
    risk: RiskVerdict
    to: str
    data: str
    value: int = 0


class SwapReceipt(BaseModel):
    id: str
    status: Literal["confirmed", "reverted", "failed"]
    tx_hash: str | None
    venue: Venue
    side: Side
    amount_in: float
    amount_out: float
    price: float | None = None
    gas_used: int | None = None
    gas_cost_eth: float | None = None
    fee_paid: float | None = Field(None, description="LP fee in units of the input asset")
    block: int | None = None
    reason: str | None = None


class SwapEvent(BaseModel):
    venue: Venue
    block: int
    timestamp: int
    tx_hash: str
    price: float
    eth_delta: float = Field(description="pool-side ETH change: + the pool received ETH (someone sold)")
    usdc_delta: float


class ChainHistory(BaseModel):
    """Real market history baked into a replica (onchain.offline.history): which bars its pools walked, at real times."""

    data: str = Field(description="dataset the bars came from (candles, or recorded V4 swaps on Base)")
    bars: int = Field(description="bars from the first to the last, inclusive")
    interval_s: int
    first_bar: int = Field(description="open time of the first bar (unix seconds)")
    last_bar: int = Field(description="open time of the last bar; the chain's clock goes on from inside it")
    swaps: int = Field(0, description="swaps mined to walk the pools (0 when read back from the chain)")
