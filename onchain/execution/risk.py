"""Risk limits (strictly validated: no inf, no NaN, no booleans, no unknown keys) and the daily-loss maths.

The kill switch marks today's swaps to market: the ETH and USDC they moved, valued at the current mid price,
against what they cost; pending swaps count at the worst fill the router allows (their minimum output).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trader_core.errors import ConfigError

ENV_PREFIX = "TRADER_RISK_"


class RiskLimits(BaseModel):
    """Risk limits checked before anything is signed (env TRADER_RISK_*, a config file, or flags)."""

    model_config = ConfigDict(extra="forbid")

    max_notional_usd: float = Field(25_000.0, gt=0, allow_inf_nan=False, description="largest single trade, in USD")
    max_portfolio_fraction: float = Field(0.5, gt=0, le=1, allow_inf_nan=False,
                                          description="largest trade as a share of the portfolio")
    daily_loss_limit_usd: float = Field(1_000.0, ge=0, allow_inf_nan=False,
                                        description="kill switch: mark-to-market loss of today's (UTC) swaps, "
                                                    "pending ones included")

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_only(cls, value: Any) -> Any:
        # pydantic would read `true` as 1.0: a limit of $1 nobody meant
        if isinstance(value, bool):
            raise ValueError("must be a number, not true/false")
        return value


def load_risk_limits(file: str | None = None, **overrides) -> RiskLimits:
    """env TRADER_RISK_* < file < overrides; an unknown TRADER_RISK_* variable is refused, not ignored."""
    from trader_core.config import resolve_config

    known = {f"{ENV_PREFIX}{name.upper()}" for name in RiskLimits.model_fields}
    unknown = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]} in the environment; known: {', '.join(sorted(known))}")
    return resolve_config(RiskLimits, overrides, file, env_prefix=ENV_PREFIX)


def mark_to_market_loss(rows: list[dict[str, Any]], price: float) -> float:
    """Loss (>= 0, USD) of these swaps at `price` USDC/ETH: ETH and USDC moved, gas paid; a pending swap counts
    at its minimum output (the worst fill the router allows)."""
    eth = usdc = gas = 0.0
    for r in rows:
        if r["status"] == "confirmed":
            got = r["amount_out"] if r["amount_out"] is not None else (r["quoted_out"] or 0.0)
        else:
            got = r["min_out"] or 0.0
        if r["side"] == "sell":
            eth -= r["amount_in"] or 0.0
            usdc += got
        else:
            usdc -= r["amount_in"] or 0.0
            eth += got
        gas += r["gas_cost_eth"] or 0.0
    return max(0.0, -(eth * price + usdc - gas * price))
