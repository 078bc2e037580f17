"""`trader bench agent`: per-turn overhead without the LLM (plan given: tools + glue), embedded tokens/s, and
whole turns with a real model (plan + tools + answer), p50 against the 3 s target.

The overhead is printed next to its peer in the same process: the same tool calls made straight on the
rl/onchain APIs, so the ratio shows what the agent layer costs on top of the work itself. Whole turns run the
`--llm` model (default `auto`: trader-qwen-rl) over fixed read-only messages after one warm-up turn; each
turn's plan source is kept, so a fast turn that the rules planned is visible as such.
"""

from __future__ import annotations

import statistics
import time

from pydantic import BaseModel


class LLMTurns(BaseModel):
    """Whole turns (plan + tools + answer) with a real model."""

    model: str
    turns: int
    p50_s: float
    p90_s: float
    max_s: float
    plan_sources: dict[str, int]
    target_p50_s: float = 3.0


class AgentBench(BaseModel):
    turn_overhead_ms: float  # mean over turns cycling price / quote / portfolio / signal
    direct_ms: float  # the same work called straight on the onchain / rl APIs
    by_intent_ms: dict[str, float]
    overhead_ratio: float
    tokens_per_s: float
    model: str
    turns: int
    chain: str
    llm_turns: LLMTurns | None = None


TURN_MESSAGES = ("what is the ETH price?", "quote selling 0.5 ETH", "what does the RL policy say?",
                 "show my portfolio")


def bench_turns(llm: str = "auto", turns: int = 8) -> LLMTurns:
    """Time `turns` whole turns (after one warm-up) with the `llm` model on the running chain."""
    from agent.turn.session import AgentConfig, build_agent

    agent = build_agent(AgentConfig(llm=llm), notify=lambda line: None)
    agent.turn(TURN_MESSAGES[0])  # warm-up: model load, policy load, first prompt states
    secs, sources = [], {}
    for i in range(turns):
        result = agent.turn(TURN_MESSAGES[i % len(TURN_MESSAGES)])
        secs.append(result.seconds)
        src = (result.plan or {}).get("source", "native")
        sources[src] = sources.get(src, 0) + 1
    ordered = sorted(secs)
    return LLMTurns(model=agent.llm.label, turns=turns, p50_s=round(statistics.median(secs), 2),
                    p90_s=round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2),
                    max_s=round(ordered[-1], 2), plan_sources=sources)


def _ensure_chain():
    """Use the running chain, or start the offline replica for the benchmark (stopped afterwards)."""
    from onchain.api import chain_status

    info = chain_status()
    if info is not None and info.running:
        return None
    from agent.market import chain_history_bars
    from onchain.api import start_chain, stop_chain

    start_chain(history_bars=chain_history_bars("default"))  # as `trader chain up` starts it
    return stop_chain


def bench_agent(turns: int = 20, tokens: int = 64, llm: str | None = None, llm_turns: int = 8) -> AgentBench:
    from finetune.llm_backends.chat_models import open_gguf, smollm2_path
    from agent.turn.facts import results_text
    from agent.market import policy_signal, position_fraction
    from agent.turn.planner import Agent, Plan
    from agent.turn.tools import ToolSession
    from onchain.api import get_portfolio, get_price, get_quote
    from onchain.market.feed import ChainFeed

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
        whole = bench_turns(llm, llm_turns) if llm and llm_turns > 0 else None
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
                      tokens_per_s=round(n / secs, 1), model=backend.label, turns=turns, chain=str(chain),
                      llm_turns=whole)
