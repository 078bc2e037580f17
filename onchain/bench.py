"""`trader bench chain`: quote latency and swap throughput through our API vs a lean raw web3.py loop,
both against the same private replica in the same process; V3 beside V2, and V4 (Universal Router, on a private
Base replica) beside both, all in one run."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from onchain.node import chain as C
from onchain.execution.journal import Journal
from onchain.offline.build import PrivateReplica
from onchain.node.rpc import calldata
from onchain.execution.swap import execute_swap, propose_swap
from onchain.venues.v2_v3 import get_quote
from onchain.execution.wallet import fund


class ChainBench(BaseModel):
    quote_p50_ms: float
    quote_p95_ms: float
    v3_quote_p50_ms: float
    swaps_per_s: float
    raw_swaps_per_s: float
    api_vs_raw: float
    n_quotes: int
    n_swaps: int
    v3_swaps_per_s: float | None = None
    v4_quote_p50_ms: float | None = None  # V4Quoter via StateView + quoteExactInputSingle (Base replica)
    v4_swaps_per_s: float | None = None  # native ETH in through the Universal Router
    v4_usdc_swaps_per_s: float | None = None  # USDC in: a Permit2 permit signed per swap


def _quote_latencies(chain: C.Chain, venue: str, n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        get_quote(chain, "sell", 0.5 + (i % 7) * 0.1, "ETH", venue)
        out.append((time.perf_counter() - t) * 1000)
    return out


def raw_web3_swaps(chain: C.Chain, n: int) -> float:
    """The peer: prebuilt calldata, fixed gas, local nonce; sign, send, wait — web3.py and nothing else."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    acct = C.dev_account(C.TRADER_ACCOUNT)
    nonce = w3.eth.get_transaction_count(acct.address, "pending")
    gas_price = w3.eth.gas_price
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    data = calldata("swapExactETHForTokens(uint256,address[],address,uint256)", 0, [C.WETH, C.USDC],
                    acct.address, deadline)
    tx = {"type": 2, "chainId": chain.chain_id, "to": C.V2_ROUTER, "value": 10**16, "data": data,
          "gas": 250_000, "maxFeePerGas": 2 * gas_price, "maxPriorityFeePerGas": 10**9}
    t = time.perf_counter()
    for i in range(n):
        signed = acct.sign_transaction({**tx, "nonce": nonce + i})
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), poll_latency=0.005)
    return n / (time.perf_counter() - t)


def api_swaps(chain: C.Chain, n: int, journal: Journal, venue: str = "v2", side: str = "sell",
              amount: float = 0.01, asset: str = "ETH") -> float:
    t = time.perf_counter()
    for _ in range(n):
        execute_swap(chain, propose_swap(chain, side, amount, asset, venue, journal=journal), journal)
    return n / (time.perf_counter() - t)


def bench_v4(n_quotes: int, n_swaps: int, journal: Journal) -> dict:
    """V4 on a private Base replica: quote latency, ETH-in and USDC-in (Permit2) swaps/s, interleaved."""
    with PrivateReplica(network="base") as chain:
        fund(chain, C.dev_account(C.TRADER_ACCOUNT).address, eth=10_000, usdc=10_000_000)
        _quote_latencies(chain, "v4", 20)
        quotes = _quote_latencies(chain, "v4", n_quotes)
        half = max(1, n_swaps // 2)
        eth_in, usdc_in = [], []
        for _ in range(2):
            eth_in.append(api_swaps(chain, half, journal, "v4"))
            usdc_in.append(api_swaps(chain, half, journal, "v4", "buy", 25.0, "USDC"))
    return {"v4_quote_p50_ms": statistics.median(quotes), "v4_swaps_per_s": statistics.harmonic_mean(eth_in),
            "v4_usdc_swaps_per_s": statistics.harmonic_mean(usdc_in)}


def bench_chain(n_quotes: int = 300, n_swaps: int = 100, v4: bool = True) -> ChainBench:
    with tempfile.TemporaryDirectory() as tmp, PrivateReplica() as chain:
        journal = Journal(Path(tmp) / "bench-journal.sqlite")
        fund(chain, C.dev_account(C.TRADER_ACCOUNT).address, eth=10_000)
        _quote_latencies(chain, "v2", 20)  # warm the connection and the node's caches
        v2 = _quote_latencies(chain, "v2", n_quotes)
        v3 = _quote_latencies(chain, "v3", max(20, n_quotes // 3))
        # interleave halves so neither side always runs on the longer chain / the warmer machine
        half = max(1, n_swaps // 2)
        raw_rates, our_rates, v3_rates = [], [], []
        for _ in range(2):
            raw_rates.append(raw_web3_swaps(chain, half))
            our_rates.append(api_swaps(chain, half, journal))
            v3_rates.append(api_swaps(chain, half, journal, "v3"))
        raw, ours = statistics.harmonic_mean(raw_rates), statistics.harmonic_mean(our_rates)
        extra = bench_v4(max(20, n_quotes // 3), n_swaps, journal) if v4 else {}
        journal.close()
    q = statistics.quantiles(v2, n=20)
    return ChainBench(quote_p50_ms=statistics.median(v2), quote_p95_ms=q[18], v3_quote_p50_ms=statistics.median(v3),
                      swaps_per_s=ours, raw_swaps_per_s=raw, api_vs_raw=ours / raw, n_quotes=n_quotes,
                      n_swaps=n_swaps, v3_swaps_per_s=statistics.harmonic_mean(v3_rates), **extra)
