"""The on-chain Python API in one place (what the agent's tools call). See onchain/__init__.py for signatures."""

from __future__ import annotations

from onchain.node.chain import Chain, ChainInfo, checkpoint, dev_account
from onchain.node.chain import status as chain_status
from onchain.execution.journal import Journal, JournalError
from onchain.node.keys import signer, trading_address
from onchain.manage import start_chain, stop_chain
from onchain.models import (PoolInfo, Portfolio, PriceQuote, Quote, RiskVerdict, SwapEvent, SwapProposal,
                            SwapReceipt)
from onchain.execution.reconcile import connect, reconcile
from onchain.market.replay import ReplayResult, replay
from onchain.offline.build import PrivateReplica
from onchain.execution.risk import RiskLimits, load_risk_limits
from onchain.execution.swap import execute_swap, propose_swap, swap
from onchain.venues.v2_v3 import get_pool, get_portfolio, get_price, get_quote, recent_swaps, swaps_to_candles
from onchain.execution.wallet import fund
from trader_core.errors import ChainError, ChainUnavailable, SwapRefused, TransactionFailed, TransactionPending

__all__ = [
    "Chain", "ChainInfo", "connect", "dev_account", "chain_status", "Journal", "PrivateReplica", "fund",
    "start_chain", "stop_chain", "PoolInfo", "Portfolio", "PriceQuote", "Quote", "RiskVerdict", "SwapEvent",
    "SwapProposal", "SwapReceipt", "ReplayResult", "replay", "RiskLimits", "execute_swap", "load_risk_limits",
    "propose_swap", "swap", "get_pool", "get_portfolio", "get_price", "get_quote", "recent_swaps",
    "swaps_to_candles", "ChainError", "ChainUnavailable", "SwapRefused", "TransactionFailed",
    "TransactionPending", "JournalError", "reconcile", "checkpoint", "signer", "trading_address",
]
