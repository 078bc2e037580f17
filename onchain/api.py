"""The on-chain Python API in one place: THE public face of onchain/ (the agent's tools call it).

Python API (import from `onchain.api`); amounts are token units (ETH, USDC):

    start_chain(fork_url=None, fork_block=None, port=None, state=None, price=None, dataset=None, eth=None,
                usdc=None, fresh=False, detach=True, network="mainnet"|"base", history_bars=None) -> ChainInfo
        # history_bars=N: a new replica walks N bars of real history at their real times (onchain.offline.history;
        # `trader chain up` passes what the policy's look-back needs); ChainInfo.history says which
        # anvil on 127.0.0.1; replica unless a fork URL / $ETH_RPC_URL (held by a loopback forwarder, never in
        # argv); the replica's state is restored unless fresh (one saved state per network); a new chain's
        # trading account gets 10 ETH + 25,000 of the network's USDC; writes trader_home()/chain/state.json;
        # detach=False ties anvil to this process
    stop_chain(save=True) -> ChainInfo | None     # saves the replica's state first, then stops anvil
    chain_status() -> ChainInfo | None            # ChainInfo{rpc_url, pid, chain_id, mode, network, port, price,
                                                  # running, ...}
    connect(rpc_url=None) -> Chain                # from the state file, then reconcile(); ChainUnavailable
                                                  # "run `trader chain up`"
    reconcile(chain, journal=None) -> list[dict]  # settle pending rows with the node that saw them
    fund(chain, address, eth=None, usdc=None) -> dict     # local nodes only; USDC via balances slot 9
    get_price(chain, venue=None|"v2"|"v3"|"v4") -> PriceQuote{venue, price}   # USDC per ETH; None: the
        # network's default (v2 on mainnet, v4 on Base, where it is the only venue)
    get_pool(chain, venue) -> PoolInfo{venue, address, price, fee_bps, eth_reserve, usdc_reserve, liquidity, tick}
    get_quote(chain, side="buy"|"sell", amount=1.0, asset="ETH"|"USDC", venue=None) -> Quote{venue, side,
        asset_in, asset_out, amount_in, amount_out, price, spot_price, price_impact_bps, fee_bps}
        # side is of ETH (buy = USDC->ETH); `asset` is the unit of `amount` (exact-in, or solved for exact-out)
    get_portfolio(chain, address=None) -> Portfolio{address, eth, weth, usdc, price, value_usd}
    propose_swap(chain, side, amount, asset="ETH", venue=None, max_slippage_bps=50, deadline_s=120,
                 risk: RiskLimits | None = None, journal: Journal | None = None, allow_live=False,
                 allow_real_key=None)
        -> SwapProposal{id, quote, min_amount_out, price_impact_bps, notional_usd, gas_estimate, gas_limit,
                        deadline, risk: RiskVerdict{ok, reasons}, ...}
        # runs every guard, signs nothing; bad input / non-local chain / no key / a real key on a local node
        # with a real chain id raise SwapRefused
    execute_swap(chain, proposal, journal=None, simulate=True, allow_live=False, timeout=60, allow_real_key=None)
        -> SwapReceipt{id, status, tx_hash, venue, side, amount_in, amount_out, price, gas_used, gas_cost_eth,
                       fee_paid, block}
        # raises SwapRefused (risk not ok), TransactionFailed (slippage/deadline revert), ChainUnavailable or
        # TransactionPending (the row stays pending, with every hash journalled, and is reconciled later)
    swap(chain, side, amount, asset="ETH", venue=None, ...) -> SwapReceipt      # propose + execute
    RiskLimits(max_notional_usd=25000, max_portfolio_fraction=0.5, daily_loss_limit_usd=1000)  # finite, no extras
    load_risk_limits(file=None, **overrides) -> RiskLimits        # env TRADER_RISK_* < file < overrides
    Journal(path=None, readonly=False)  .list_trades(limit=None, status=None) -> list[dict]  .get(id)
        .decline(id, reason)   # a proposal the user said no to (the agent's REPL should call it too)
        .flows_today(account, node_id)   # today's confirmed + pending swaps (the kill switch's input)
    replay(chain, data=None, steps=50, speed=0.0, venues=("v2", "v3")) -> ReplayResult
    recent_swaps(chain, venue="v3", blocks=5000) -> list[SwapEvent];  swaps_to_candles(events, "1m") -> Candles
    PrivateReplica(price=None, network=None, history_bars=0)   # a throwaway replica Chain, always stopped
    onchain.market.v4_replay.replay_swaps(chain, data=None, steps=50, speed=0.0)   # Base: the real V4 swap sequence

Errors come from trader_core.errors: ChainUnavailable, ChainError, TransactionFailed, TransactionPending,
SwapRefused, ConfigError, StorageError (JournalError: the journal file cannot be used).
"""

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
