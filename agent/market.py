"""Market context for the agent: recent candles (bundled data extended by on-chain prices), position, and the
trader model's opinion asked in the seed's question format with real numbers.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np

_ACTION = re.compile(r"\b(BUY|SELL|HOLD)\b", re.IGNORECASE)


def base_candles(session: Any):
    """The bundled default dataset, loaded once per session."""
    if getattr(session, "_base_candles", None) is None:
        from trader_core.market_data import DEFAULT_DATASET, load_candles

        session._base_candles = load_candles(DEFAULT_DATASET)
    return session._base_candles


def extend_candles(candles, prices: list[float]):
    """Append one flat bar per observed on-chain price, one interval apart after the last bundled bar."""
    from trader_core.market_data import Candles

    if not prices:
        return candles
    step = candles.interval_s or 3600
    ts = candles.timestamps[-1] + step * np.arange(1, len(prices) + 1, dtype=np.int64)
    px = np.asarray(prices, dtype=np.float64)
    opens = np.concatenate([[candles.close[-1]], px[:-1]])
    vol = None if candles.volume is None else np.concatenate([candles.volume, np.zeros(len(px))])
    return Candles(np.concatenate([candles.timestamps, ts]), np.concatenate([candles.open, opens]),
                   np.concatenate([candles.high, np.maximum(opens, px)]),
                   np.concatenate([candles.low, np.minimum(opens, px)]),
                   np.concatenate([candles.close, px]), vol, f"{candles.name}+onchain", candles.interval_s)


def recent_candles(session: Any, price: float | None = None):
    """Bundled candles extended by this session's on-chain price observations (and `price`, the latest)."""
    prices = [p for _, p in getattr(session, "price_history", [])[-48:]]
    if price is not None:
        prices.append(float(price))
    return extend_candles(base_candles(session), prices)


def position_fraction(portfolio: dict, price: float) -> float:
    """Fraction of portfolio value held in ETH (ETH + WETH), 0..1."""
    eth = float(portfolio.get("eth", 0) or 0) + float(portfolio.get("weth", 0) or 0)
    usdc = float(portfolio.get("usdc", 0) or 0)
    total = eth * price + usdc
    return 0.0 if total <= 0 else float(min(1.0, max(0.0, eth * price / total)))


def market_summary(candles, lookback: int = 24) -> dict:
    """Price, last volume, volatility (std of hourly log returns) and the change over `lookback` bars."""
    close = candles.close[-(lookback + 1):]
    rets = np.diff(np.log(close))
    hours = lookback * (candles.interval_s or 3600) / 3600
    volume = None if candles.volume is None else float(candles.volume[-1])
    return {"price": float(candles.close[-1]), "volume": volume,
            "volatility": float(np.std(rets)) if rets.size else 0.0,
            "change_pct": float((close[-1] / close[0] - 1) * 100), "change_hours": hours}


def parse_action(text: str) -> str:
    """The first BUY/SELL/HOLD a model wrote, or UNKNOWN."""
    match = _ACTION.search(text or "")
    return match.group(1).upper() if match else "UNKNOWN"


def trader_question(summary: dict, eth: float, usdc: float) -> str:
    """The seed's question with real numbers, formatted exactly as the fine-tune data was (finetune.formats)."""
    from finetune.formats import question

    return question({"price": summary["price"], "volume": summary["volume"], "volatility": summary["volatility"],
                     "price_change": summary["change_pct"] / 100, "eth": eth, "usdc": usdc})


def ask_trader_model(session: Any, question: str | None = None) -> dict:
    """Ask the trader model (Ollama trader-qwen-rl, the project GGUF, else SmolLM2) with real numbers."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from agent.llm import LLM

    eth = usdc = 0.0
    price = None
    if session.chain_up():
        from onchain import get_portfolio, get_price

        from agent.tools import to_dict

        price = float(to_dict(get_price(session.chain))["price"])
        pf = to_dict(get_portfolio(session.chain))
        eth = float(pf.get("eth", 0) or 0) + float(pf.get("weth", 0) or 0)
        usdc = float(pf.get("usdc", 0) or 0)
    summary = market_summary(recent_candles(session, price))
    if question is None:
        question = trader_question(summary, eth, usdc)
    from finetune.formats import SYSTEM_PROMPT, parse_action as parse_recommendation

    if session._trader_llm is None:
        session._trader_llm = LLM(session.trader_llm_spec, notify=session.notify)
        from agent.llamacpp import LlamaCppChat

        chat = session._trader_llm.current.chat
        if isinstance(chat, LlamaCppChat):  # the Modelfile's sampling, which the fine-tune was evaluated with
            session._trader_llm.current.chat = chat.model_copy(
                update={"temperature": 0.25, "repeat_penalty": 1.1, "max_tokens": 100})
    llm = session._trader_llm
    started = time.perf_counter()
    text = "".join(llm.stream([SystemMessage(SYSTEM_PROMPT), HumanMessage(question)])).strip()
    # The fine-tuned model ends with "RECOMMENDATION: X"; other models get the first BUY/SELL/HOLD they wrote.
    action = parse_recommendation(text) or parse_action(text)
    return {"question": question, "answer": text, "action": action, "model": llm.label,
            "seconds": round(time.perf_counter() - started, 3)}
