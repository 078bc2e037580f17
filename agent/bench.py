"""`trader bench agent`: per-turn overhead without the LLM (plan given: tools + glue) and embedded tokens/s.

The overhead is printed next to its peer in the same process: the same tool calls made straight on the
rl/onchain APIs, so the ratio shows what the agent layer costs on top of the work itself.
"""

from __future__ import annotations

import statistics
import time

from pydantic import BaseModel


class AgentBench(BaseModel):
    turn_overhead_ms: float  # mean over turns cycling price / quote / portfolio / signal
    direct_ms: float  # the same work called straight on the onchain / rl APIs
    by_intent_ms: dict[str, float]
    overhead_ratio: float
    tokens_per_s: float
    model: str
    turns: int
    chain: str


def _ensure_chain():
    """Use the running chain, or start the offline replica for the benchmark (stopped afterwards)."""
    from onchain import chain_status

    info = chain_status()
    if info is not None and info.running:
        return None
    from onchain import start_chain, stop_chain

    start_chain()
    return stop_chain


def bench_agent(turns: int = 20, tokens: int = 64) -> AgentBench:
    from agent.llm import open_gguf, smollm2_path
    from agent.facts import results_text
    from agent.market import policy_signal, position_fraction
    from agent.planner import Agent, Plan
    from agent.tools import ToolSession
    from onchain import get_portfolio, get_price, get_quote
    from onchain.feed import ChainFeed

    stop = _ensure_chain()
    try:
        tools = ToolSession()
        agent = Agent(llm=None, tools=tools)  # type: ignore[arg-type]  # no LLM: the plan is given
        plans = [Plan(intent="price"), Plan(intent="quote", side="sell", amount=0.5, asset="ETH"),
                 Plan(intent="portfolio"), Plan(intent="signal")]
        for p in plans:  # warm-up: policy load, chain connection, first candles
            agent.run_plan(p, "", lambda *a: None)
        glue, direct, by_intent = [], [], {}
        for i in range(turns):
            p = plans[i % len(plans)]
            t0 = time.perf_counter()
            results_text(agent.run_plan(p, "", lambda *a: None))
            glue.append((time.perf_counter() - t0) * 1000)
            by_intent.setdefault(p.intent, []).append(glue[-1])
            t0 = time.perf_counter()
            if p.intent == "price":
                get_price(tools.chain)
            elif p.intent == "quote":
                get_quote(tools.chain, "sell", 0.5, "ETH")
            elif p.intent == "portfolio":
                get_portfolio(tools.chain)
            else:  # the same reads the tool makes: the pool's candles after the history, the wallet, the policy
                snapshot = ChainFeed(tools.chain, history=tools.history).read()
                pf = get_portfolio(tools.chain)
                policy_signal(tools.policy, snapshot, position_fraction(pf.eth + pf.weth, pf.usdc, snapshot.price),
                              "chain wallet")
            direct.append((time.perf_counter() - t0) * 1000)
        chain = f"chain id {tools.chain.chain_id}"
    finally:
        if stop:
            stop()
    backend = open_gguf(smollm2_path(), "SmolLM2-135M-Instruct (embedded gguf)")
    llama = backend.chat.llama
    llama.create_completion("Hello", max_tokens=4)  # warm-up
    t0 = time.perf_counter()
    out = llama.create_completion("The price of ETH today is", max_tokens=tokens, temperature=0.0,
                                  stop=[])
    secs = time.perf_counter() - t0
    n = out["usage"]["completion_tokens"]
    overhead, peer = statistics.mean(glue), statistics.mean(direct)
    return AgentBench(turn_overhead_ms=round(overhead, 2), direct_ms=round(peer, 2),
                      by_intent_ms={k: round(statistics.median(v), 2) for k, v in by_intent.items()},
                      overhead_ratio=round(overhead / peer, 3) if peer else 0.0,
                      tokens_per_s=round(n / secs, 1), model=backend.label, turns=turns, chain=str(chain))
