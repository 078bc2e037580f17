"""A deterministic keyword router that backs up weak planners.

Measured here: SmolLM2-135M's forced `plan` call is always valid JSON but picks the right intent for only
a few of the everyday phrasings ("sell 0.5 ETH" -> chat). When the embedded 135M model plans, unambiguous
phrasings are routed by these rules instead; anything they do not recognise keeps the model's plan.
Trades are read by `agent.turn.safety` (the same parser that decides what counts as an order): a message that is
a question, a negation, a hypothetical, quoted text or a rule change never routes to a trade. A question
about a trade gets a quote (what it would give), never a proposal.
"""

from __future__ import annotations

import re

from agent.turn.safety import check_message

_READ_ONLY = [
    ("chat", re.compile(r"^\s*(hi|hello|hey|thanks|thank you|who are you|what can you do|help)\b", re.I)),
    ("trades", re.compile(r"\b(trades|trade history|journal|history of (my )?trades)\b", re.I)),
    ("portfolio", re.compile(r"\b(portfolio|balances?|how much (eth|usdc)|holdings?|what do i (hold|have)|wallet)\b",
                             re.I)),
    ("explain", re.compile(r"\b(explain|why)\b", re.I)),
    ("signal", re.compile(r"\b(signal|policy|recommend\w*|should i|dqn|rl model|advice|q-?values?)\b", re.I)),
    ("quote", re.compile(r"\bquote\b|\bhow much would i get\b", re.I)),
    ("price", re.compile(r"\b(price|how much is (an? )?eth|eth at|worth|cost)\b", re.I)),
]
_QUOTE = re.compile(r"\bquote\b|\bhow much (would|do|will) i get\b", re.I)


def read_only_intent(text: str) -> str | None:
    """The read-only intent a message names (price, signal, portfolio, ...), if any."""
    for intent, pattern in _READ_ONLY:
        if pattern.search(text):
            return intent
    return None


def keyword_plan(text: str) -> dict | None:
    """A plan dict for unambiguous phrasings, else None."""
    check = check_message(text)
    trade = check.mentions[0] if len(check.mentions) == 1 else None
    if trade is not None and trade.everything and trade.ambiguous:
        trade = None  # "sell all my USDC": not a trade this agent makes
    if trade is None:  # read-only requests route as they read; "yes" alone asks to execute the pending proposal
        if check.confirmation:
            return {"intent": "execute"}
        intent = read_only_intent(text)
        return {"intent": intent} if intent else None
    args = {"side": trade.side, "asset": trade.asset, **({"amount": trade.amount} if trade.amount else {})}
    if check.may_trade:
        return {"intent": "quote" if _QUOTE.search(text) else "propose", **args}
    if check.kinds & {"negation", "rule_change", "quoted", "reported", "multiple"}:
        return {"intent": "chat"}  # said not to, or not the user's own single order: nothing to look up
    asks = "quote" if _QUOTE.search(text) else read_only_intent(text)
    if asks is None or asks == "quote":  # a question or hypothetical about this trade: what it would give
        return {"intent": "quote", **args} if trade.amount else None
    return {"intent": asks}
