"""A deterministic keyword router that backs up weak planners.

Measured here: SmolLM2-135M's forced `plan` call is always valid JSON but picks the right intent for only
a few of the everyday phrasings ("sell 0.5 ETH" -> chat). When the embedded 135M model plans, unambiguous
phrasings are routed by these rules instead; anything they do not recognise keeps the model's plan.
Routing only chooses read-only tools or a *proposal*: execution still needs the user's confirmation.
"""

from __future__ import annotations

import re

_NUM = r"(\d+(?:\.\d+)?|\.\d+)"
_TRADE = [
    # "sell 0.5 eth", "buy 1 ETH", "swap 0.2 eth for usdc"
    (re.compile(rf"\b(sell|selling|swap|swapping|buy|buying)\s+{_NUM}\s*(w?eth|usdc)\b", re.I), None),
    # "buy eth with 200 usdc", "sell eth for ..." handled above; "spend 100 usdc on eth"
    (re.compile(rf"\bbuy\s+(?:some\s+)?w?eth\s+(?:with|for|using)\s+{_NUM}\s*usdc\b", re.I), "buy_with"),
    (re.compile(rf"\bspend\s+{_NUM}\s*usdc\b", re.I), "spend"),
]
_ALL_ETH = re.compile(r"\b(sell|swap|dump)\b.*\b(all|everything|entire|whole)\b.*\beth\b", re.I)
_INTENTS = [
    ("chat", re.compile(r"^\s*(hi|hello|hey|thanks|thank you|who are you|what can you do|help)\b", re.I)),
    ("execute", re.compile(r"^\s*(y|yes|confirm|execute|do it|go ahead)\b.*$", re.I)),
    ("trades", re.compile(r"\b(trades|trade history|journal|history of (my )?trades)\b", re.I)),
    ("portfolio", re.compile(r"\b(portfolio|balances?|how much (eth|usdc)|holdings?|what do i (hold|have)|wallet)\b",
                             re.I)),
    ("explain", re.compile(r"\b(explain|why)\b", re.I)),
    ("signal", re.compile(r"\b(signal|policy|recommend\w*|should i|dqn|rl model|advice|q-?values?)\b", re.I)),
    ("quote", re.compile(r"\bquote\b|\bhow much would i get\b", re.I)),
    ("price", re.compile(r"\b(price|how much is (an? )?eth|eth at|worth|cost)\b", re.I)),
]


def _asset(token: str) -> str:
    return "USDC" if token.lower() == "usdc" else "ETH"


def keyword_plan(text: str) -> dict | None:
    """A plan dict for unambiguous phrasings, else None."""
    quote = bool(re.search(r"\bquote\b|\bhow much would i get\b", text, re.I))
    for pattern, kind in _TRADE:
        m = pattern.search(text)
        if not m:
            continue
        intent = "quote" if quote else "propose"
        if kind == "buy_with" or kind == "spend":
            return {"intent": intent, "side": "buy", "amount": float(m.group(1)), "asset": "USDC"}
        verb, amount, asset = m.group(1).lower(), float(m.group(2)), _asset(m.group(3))
        side = "buy" if verb.startswith("buy") else "sell"
        if verb.startswith("swap") and asset == "USDC":
            side = "buy"  # swapping USDC means buying ETH
        return {"intent": intent, "side": side, "amount": amount, "asset": asset}
    if _ALL_ETH.search(text):
        return {"intent": "quote" if quote else "propose", "side": "sell", "asset": "ETH"}
    for intent, pattern in _INTENTS:
        if pattern.search(text):
            return {"intent": intent}
    return None
