"""`trader chain ...`, the market commands (`trader price|quote|swap|portfolio|trades`) and `trader bench chain`.

The CLI only parses and prints; the work is done by plain functions in onchain.* (imported inside commands
so `trader --help` stays instant).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import typer

from trader_core.cli_utils import print_json

chain_app = typer.Typer(help="Run a local Anvil chain (mainnet or Base; fork or offline replica).",
                        no_args_is_help=True)

RPC_OPT = typer.Option(None, "--rpc-url", help="Node URL (default: the chain from `trader chain up`).")
JSON_OPT = typer.Option(False, "--json", help="Strict JSON on stdout.")
VENUE_OPT = typer.Option(None, "--venue", help="v2 (Router02 / pair) or v3 (SwapRouter / 0.05% pool) on mainnet; "
                         "v4 (Universal Router / ETH-USDC 0.05% pool) on Base. Default: v2 on mainnet, v4 on Base.",
                         show_default=False)


def _info_json(info) -> dict:
    return info.model_dump()


# Bars of real history a new replica bakes when `chain up` gets no --history-bars. onchain/ knows no policy: the
# agent layer (agent/cli.py) registers what its policy's look-back needs; unregistered, none is baked.
_history_bars_default: Callable[[], int] | None = None


def set_history_bars_default(provider: Callable[[], int] | None) -> None:
    """Register how many bars `chain up` bakes by default (called once by the app that mounts these commands)."""
    global _history_bars_default
    _history_bars_default = provider


def _utc(ts: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(ts)))


@chain_app.command("up")
def up(
    fork_url: Optional[str] = typer.Option(None, "--fork-url", help="Fork this RPC (default $ETH_RPC_URL); "
                                           "without it an offline mainnet replica starts. Held by a loopback "
                                           "forwarder: never in anvil's argv or log.", show_default=False),
    fork_block: Optional[int] = typer.Option(None, "--fork-block", help="Fork at this block number."),
    port: Optional[int] = typer.Option(None, "--port", help="Port on 127.0.0.1 (default: a free one)."),
    state: Optional[str] = typer.Option(None, "--state", help="The replica's saved state file (default "
                                        "$TRADER_HOME/chain/replica-state.json): loaded at start, saved after "
                                        "swaps and at `chain down`."),
    price: Optional[float] = typer.Option(None, "--price", help="Seed price of a new replica, USDC per ETH "
                                          "(default: latest close of the bundled dataset)."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset whose latest close (Base: latest swap) seeds "
                                       "a new replica."),
    eth: Optional[float] = typer.Option(None, "--eth", help="The trading account's ETH on a new chain "
                                        "(default $TRADER_WALLET_ETH or 10); given, it also resets a restored one."),
    usdc: Optional[float] = typer.Option(None, "--usdc", help="The trading account's USDC on a new chain "
                                         "(default $TRADER_WALLET_USDC or 25000; Base: Base's USDC)."),
    fresh: bool = typer.Option(False, "--fresh", help="Discard the saved replica state and start from the seed."),
    network: str = typer.Option("mainnet", "--network", help="mainnet (V2/V3, chain id 1) or base (Uniswap V4, "
                                "chain id 8453); each network's replica keeps its own saved state."),
    history_bars: Optional[int] = typer.Option(
        None, "--history-bars", help="Bars of real market history a new replica carries, swapped through its pools "
        "at their real times (mainnet: the --data candles; Base: the recorded V4 swaps); default: what the policy's "
        "look-back needs plus a day; 0: none. Built once per number and cached.", show_default=False),
    json_out: bool = JSON_OPT,
) -> None:
    """Start anvil on 127.0.0.1 (fork or offline replica of mainnet or Base) and record it for later commands."""
    import os

    from onchain.node.chain import status
    from onchain.manage import start_chain

    if history_bars is None and not (fork_url or os.environ.get("ETH_RPC_URL")) and _history_bars_default:
        history_bars = _history_bars_default()
    before = status()
    info = start_chain(fork_url=fork_url, fork_block=fork_block, port=port, state=state, price=price, dataset=data,
                       eth=eth, usdc=usdc, fresh=fresh, network=network, history_bars=history_bars)
    if json_out:
        print_json(_info_json(info))
        return
    again = before is not None and before.running and before.pid == info.pid
    what = f"{info.network} {info.mode} (chain id {info.chain_id})"
    if info.mode == "replica" and info.restored_block is not None:
        what += f", restored from its saved state (block {info.restored_block}), pool at {info.price:,.2f} USDC/ETH"
    elif info.mode == "replica":
        what += f", seeded at {info.price:,.2f} USDC/ETH"
    elif info.fork_url:
        what += f", forking {info.fork_url}"
    typer.echo(f"{'already running' if again else 'started'}: {what} on {info.rpc_url} (pid {info.pid})")
    h = info.history
    if h is not None:
        bar = f"{h.interval_s // 3600}h" if h.interval_s % 3600 == 0 else f"{h.interval_s // 60}m"
        typer.echo(f"history: {h.bars} real {bar} bars of {h.data}, {_utc(h.first_bar)} .. "
                   f"{_utc(h.last_bar)}, swapped through its pools at their real times; the chain's clock goes on "
                   "from there")
    elif info.mode == "replica" and price is not None:
        typer.echo("history: none (--price seeds a price no real history ends at)")
    typer.echo("stop it with: trader chain down")


@chain_app.command("status")
def status_cmd(json_out: bool = JSON_OPT) -> None:
    """Show the recorded chain; exit code 1 if none is running."""
    from onchain.node.chain import find_orphans, status

    info = status()
    for pid in find_orphans():
        typer.echo(f"warning: an anvil or forwarder this TRADER_HOME started runs unrecorded (pid {pid}); "
                   "`trader chain up` or `trader chain down` stops it", err=True)
    if json_out:
        print_json(_info_json(info) if info else {"rpc_url": None, "pid": None, "chain_id": None, "mode": None,
                                                   "running": False})
    elif info is None:
        typer.echo("no chain recorded; start one with: trader chain up")
    else:
        state = "running" if info.running else "NOT answering (run `trader chain up` to restart)"
        typer.echo(f"{info.mode} chain id {info.chain_id} on {info.rpc_url} (pid {info.pid}): {state}")
    if info is None or not info.running:
        raise typer.Exit(1)


@chain_app.command("down")
def down(no_save: bool = typer.Option(False, "--no-save", help="Stop without saving the replica's state "
                                      "(e.g. when the disk is full)."),
         json_out: bool = JSON_OPT) -> None:
    """Save the replica's state and stop the recorded anvil by its pid."""
    from onchain.manage import stop_chain

    info = stop_chain(save=not no_save)
    if json_out:
        print_json({"stopped": info is not None, "pid": info.pid if info else None})
    else:
        typer.echo(f"stopped anvil (pid {info.pid})" if info else "no chain was recorded; nothing to stop")


@chain_app.command("fund")
def fund_cmd(
    address: str = typer.Argument(..., help="0x address to fund."),
    eth: Optional[float] = typer.Option(None, "--eth", help="Set the ETH balance to this."),
    usdc: Optional[float] = typer.Option(None, "--usdc", help="Set the USDC balance to this (writes slot 9)."),
    rpc_url: Optional[str] = RPC_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Set ETH (anvil_setBalance) and USDC (balances slot) of an address on a local node."""
    from onchain.node.chain import checkpoint
    from onchain.manage import fund
    from onchain.execution.reconcile import connect

    chain = connect(rpc_url)
    result = fund(chain, address, eth=eth, usdc=usdc)
    checkpoint(chain)
    if json_out:
        print_json(result)
    else:
        typer.echo(f"{result['address']}: {result['eth']:.6g} ETH, {result['usdc']:,.2f} USDC")


@chain_app.command("replay")
def replay_cmd(
    data: Optional[str] = typer.Option(None, "--data", help="Bundled dataset name or candle CSV path."),
    steps: int = typer.Option(50, "--steps", help="Replay the last N closes (Base: the last N swaps)."),
    speed: float = typer.Option(0.0, "--speed", help="Candles (Base: swaps) per second (0 = as fast as possible)."),
    venue: Optional[str] = typer.Option(None, "--venue", help="Only this pool (v2 or v3); default both. "
                                        "On Base the V4 pool."),
    hourly: bool = typer.Option(False, "--hourly", help="One bar of block time per close (the data's bar "
                                "interval, 1h for the bundled hourly data), so the pool's candles carry the "
                                "whole path; the chain's clock ends ahead of the wall clock. Mainnet only."),
    rpc_url: Optional[str] = RPC_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Move the replica pools along a real historical price path with real swaps (on Base: the real V4 swap
    sequence of univ4-base-eth-swaps, with its real timestamp spacing)."""
    from onchain.node.chain import checkpoint
    from onchain.networks import BASE, network_of
    from onchain.execution.reconcile import connect
    from trader_core.errors import ConfigError

    chain = connect(rpc_url)
    if network_of(chain) is BASE:
        from onchain.market.v4_replay import replay_swaps

        if hourly:
            raise ConfigError("--hourly walks the mainnet V2/V3 pools; on Base `trader chain replay` already "
                              "replays the real V4 swaps at their real time spacing: drop --hourly")

        r = replay_swaps(chain, data=data, steps=steps, speed=speed)
        checkpoint(chain)
        if json_out:
            print_json(r.model_dump())
        else:
            typer.echo(f"replayed {r.swaps} real swaps of {r.data} on V4: {r.start_price:,.2f} -> "
                       f"{r.end_price:,.2f} USDC/ETH (target {r.target_end:,.2f}, max error "
                       f"{r.max_error_bps:.2g} bps), block times {r.first_timestamp}..{r.last_timestamp}"
                       + (f" (real times + {r.time_offset_s} s)" if r.time_offset_s else " (real times)"))
        return
    from onchain.market.replay import replay

    venues = (venue.lower(),) if venue else ("v2", "v3")
    result = replay(chain, data=data, steps=steps, speed=speed, venues=venues, timed=hourly)
    checkpoint(chain)
    if json_out:
        print_json(result.model_dump())
    else:
        typer.echo(f"replayed {result.steps} closes of {result.data} with {result.swaps} swaps: "
                   f"{result.start_price:,.2f} -> {result.end_price_v2:,.2f} (v2) / {result.end_price_v3:,.2f} (v3)"
                   + (f", one bar per close at block times {result.first_timestamp}..{result.last_timestamp}"
                      if hourly else ""))


# --- top-level market commands ----------------------------------------------------------------------------

def price(venue: str = VENUE_OPT, rpc_url: Optional[str] = RPC_OPT, json_out: bool = JSON_OPT) -> None:
    """Mid price of ETH in USDC from V2 reserves, V3 slot0 or V4 StateView.getSlot0."""
    from onchain.execution.reconcile import connect
    from onchain.venues.v2_v3 import get_price

    p = get_price(connect(rpc_url), venue)
    if json_out:
        print_json({"venue": p.venue, "price": p.price})
    else:
        typer.echo(f"{p.price:,.2f} USDC/ETH ({p.venue})")


def quote(
    side: str = typer.Argument(..., help="buy (USDC -> ETH) or sell (ETH -> USDC)."),
    amount: str = typer.Argument(..., help="Amount of ASSET."),
    asset: str = typer.Argument("ETH", help="ETH or USDC: the unit of AMOUNT."),
    venue: str = VENUE_OPT,
    rpc_url: Optional[str] = RPC_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Exact quote for a size (Router02 getAmountsOut / QuoterV2 / V4Quoter) with price impact."""
    from onchain.execution.reconcile import connect
    from onchain.venues.v2_v3 import get_quote, parse_order

    parse_order(side, amount, asset, venue)  # bad input fails before touching the chain
    q = get_quote(connect(rpc_url), side, amount, asset, venue)
    if json_out:
        print_json(q.model_dump(exclude={"amount_in_raw", "amount_out_raw"}))
    else:
        typer.echo(f"{q.side} on {q.venue}: {q.amount_in:.6g} {q.asset_in} -> {q.amount_out:.6g} {q.asset_out} "
                   f"at {q.price:,.2f} USDC/ETH (impact {q.price_impact_bps:.1f} bps, fee {q.fee_bps:g} bps)")


def _deadline_seconds(text: str) -> int:
    from trader_core.errors import ConfigError
    from trader_core.market_data import parse_interval

    try:
        seconds = parse_interval(text)
    except OverflowError:  # '1e999s'
        seconds = -1
    if not 1 <= seconds <= 86_400:
        raise ConfigError(f"--deadline must be 1s..24h (e.g. 120s or 5m), got {text!r}")
    return seconds


def _confirm(prompt: str) -> tuple[bool, str]:
    """(yes?, why not): stdin that is not a terminal, end of input and Ctrl+C all mean no."""
    import sys

    if not sys.stdin.isatty():
        return False, "stdin is not a terminal and --yes was not given"
    try:
        return typer.confirm(prompt, default=False), "declined at the prompt"
    except (typer.Abort, KeyboardInterrupt, EOFError):
        return False, "interrupted at the prompt"


def swap(
    side: str = typer.Argument(..., help="buy (USDC -> ETH) or sell (ETH -> USDC)."),
    amount: str = typer.Argument(..., help="Amount of ASSET."),
    asset: str = typer.Argument("ETH", help="ETH or USDC: the unit of AMOUNT."),
    venue: str = VENUE_OPT,
    max_slippage_bps: int = typer.Option(50, "--max-slippage-bps", help="amountOutMin = quote * (1 - bps)."),
    deadline: str = typer.Option("120s", "--deadline", help="Router deadline from now, e.g. 120s or 5m."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Quote, check every guard, sign nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Execute without asking (needed when stdin is not a "
                             "terminal)."),
    allow_live: bool = typer.Option(False, "--allow-live", help="Allow signing on a non-local chain."),
    allow_real_key: bool = typer.Option(False, "--allow-real-key", help="Allow a non-dev TRADER_PRIVATE_KEY on a "
                                        "local node with a real chain id (its signatures are valid there too); "
                                        "or TRADER_ALLOW_REAL_KEY_ON_LOCAL=1."),
    risk_config: Optional[str] = typer.Option(None, "--risk-config", help="JSON/YAML/TOML file with risk limits."),
    rpc_url: Optional[str] = RPC_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Exact-input swap through Router02, SwapRouter or the Universal Router (V4, Permit2 for USDC), with guards,
    simulation and a journal row."""
    from onchain.execution.journal import Journal
    from onchain.execution.reconcile import connect
    from onchain.execution.risk import load_risk_limits
    from onchain.execution.swap import execute_swap, propose_swap
    from onchain.venues.v2_v3 import parse_order
    from trader_core.errors import ConfigError, SwapRefused

    parse_order(side, amount, asset, venue)
    deadline_s = _deadline_seconds(deadline)
    risk = load_risk_limits(risk_config)  # a bad limit fails before anything is quoted or journalled
    if not (yes or dry_run) and json_out:
        raise ConfigError("--json needs --yes to execute (or --dry-run to only check)")
    chain = connect(rpc_url)
    journal = Journal()
    allow_key = allow_real_key or None
    proposal = propose_swap(chain, side, amount, asset, venue, max_slippage_bps, deadline_s, risk, journal,
                            allow_live, allow_key)
    q = proposal.quote
    if not proposal.risk.ok:
        raise SwapRefused("swap refused: " + "; ".join(proposal.risk.reasons))
    summary = (f"{q.side} on {q.venue}: {q.amount_in:.6g} {q.asset_in} -> {q.amount_out:.6g} {q.asset_out} "
               f"(min {proposal.min_amount_out:.6g}, impact {q.price_impact_bps:.1f} bps, "
               f"gas ~{proposal.gas_estimate})")
    if dry_run:
        journal.transition(proposal.id, "proposed", status="dry-run")
        if json_out:
            print_json({"status": "dry-run", "tx_hash": None, "amount_in": q.amount_in, "amount_out": q.amount_out,
                        "gas_used": None, "min_amount_out": proposal.min_amount_out,
                        "gas_estimate": proposal.gas_estimate, "price_impact_bps": q.price_impact_bps,
                        "id": proposal.id})
        else:
            typer.echo(f"dry run, nothing signed: {summary}")
        return
    if not yes:
        ok, why = _confirm(f"{summary}\nexecute on {chain.describe()}?")
        if not ok:
            journal.decline(proposal.id, why)
            raise SwapRefused(f"not executed ({why}); nothing signed; the proposal is journalled as declined. "
                              "Pass --yes to execute without asking")
    r = execute_swap(chain, proposal, journal, allow_live=allow_live, allow_real_key=allow_key)
    if json_out:
        print_json(r.model_dump())
    else:
        typer.echo(f"confirmed {r.tx_hash}: {r.amount_in:.6g} {q.asset_in} -> {r.amount_out:.6g} {q.asset_out} "
                   f"at {r.price:,.2f} USDC/ETH, gas {r.gas_used}")


def portfolio(address: Optional[str] = typer.Option(None, "--address", help="Default: the trading account."),
              rpc_url: Optional[str] = RPC_OPT, json_out: bool = JSON_OPT) -> None:
    """ETH, WETH and USDC balances."""
    from onchain.execution.reconcile import connect
    from onchain.venues.v2_v3 import get_portfolio

    p = get_portfolio(connect(rpc_url), address)
    if json_out:
        print_json(p.model_dump())
    else:
        typer.echo(f"{p.address}: {p.eth:.6g} ETH, {p.weth:.6g} WETH, {p.usdc:,.2f} USDC"
                   + (f" (~{p.value_usd:,.2f} USD)" if p.value_usd is not None else ""))


MAX_TRADES_LIMIT = 1_000_000


def trades(limit: int = typer.Option(20, "--limit", help="Newest N rows (0 = all)."),
           status: Optional[str] = typer.Option(None, "--status", help="Only rows with this status."),
           reconcile_rows: bool = typer.Option(False, "--reconcile", help="First settle pending rows with the "
                                               "running chain (by tx hash, on the node that saw them)."),
           rpc_url: Optional[str] = RPC_OPT,
           json_out: bool = JSON_OPT,
           stats: bool = typer.Option(False, "--stats", help="Summarise fills: slippage vs quote (bps), fees, "
                                      "price impact, gas.")) -> None:
    """The trade journal (every proposal and swap, newest first)."""
    from onchain.execution.journal import Journal, journal_path
    from trader_core.errors import ConfigError

    if not 0 <= limit <= MAX_TRADES_LIMIT:
        raise ConfigError(f"--limit must be 0 (all) to {MAX_TRADES_LIMIT:,}, got {limit}")
    changed = []
    if reconcile_rows:
        from onchain.node.chain import connect
        from onchain.execution.reconcile import reconcile

        journal = Journal()
        changed = reconcile(connect(rpc_url), journal)
    elif not journal_path().exists():
        if json_out:
            print_json([])
        else:
            typer.echo("no trades journalled yet")
        return
    else:
        journal = Journal(readonly=True)
    rows = journal.list_trades(limit=None if stats else (limit or None), status=status)
    if stats:
        from onchain.execution.quality import format_stats, summarise

        summary = summarise(rows)
        if json_out:
            print_json({**summary.model_dump(), "cost_bps": summary.cost_bps})
        else:
            typer.echo(format_stats(summary))
        return
    if json_out:
        print_json(rows)
        return
    if reconcile_rows:
        typer.echo(f"reconciled {len(changed)} row(s)" + "".join(f"; {r['id']} -> {r['status']}" for r in changed))
    if not rows:
        typer.echo("no trades journalled yet")
    for r in rows:
        amount_in = f"{r['amount_in']:.6g}" if r["amount_in"] is not None else "?"
        out = f"{r['amount_out']:.6g}" if r["amount_out"] is not None else f"~{r['quoted_out'] or 0:.6g}"
        typer.echo(f"{r['id']} {r['status']:<9} {r['venue']} {r['side']:<4} {amount_in} {r['asset_in']} -> "
                   f"{out} {r['asset_out']}" + (f"  [{r['reason']}]" if r["reason"] else ""))


def bench_chain_cmd(n_quotes: int = typer.Option(300, "--quotes"), n_swaps: int = typer.Option(100, "--swaps"),
                    json_out: bool = JSON_OPT) -> None:
    """Quote latency and swaps/s through our API vs a lean raw web3.py loop (private replica); V2, V3 and V4
    (private Base replica) side by side."""
    from onchain.bench import bench_chain

    b = bench_chain(n_quotes=n_quotes, n_swaps=n_swaps)
    if json_out:
        print_json(b.model_dump())
    else:
        typer.echo(f"quote p50 {b.quote_p50_ms:.2f} ms (p95 {b.quote_p95_ms:.2f}, v3 p50 {b.v3_quote_p50_ms:.2f}, "
                   f"v4 p50 {b.v4_quote_p50_ms:.2f}); swaps/s v2 {b.swaps_per_s:.1f} vs raw web3 "
                   f"{b.raw_swaps_per_s:.1f} ({b.api_vs_raw:.2f}x), v3 {b.v3_swaps_per_s:.1f}, "
                   f"v4 {b.v4_swaps_per_s:.1f} (USDC in via Permit2 {b.v4_usdc_swaps_per_s:.1f})")


top_level_commands: list = [price, quote, swap, portfolio, trades]
bench_commands: dict = {"chain": bench_chain_cmd}
