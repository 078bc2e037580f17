"""The `plan` call's arguments as written: a per-message constraint on what the model may put in them.

The model decides the intent; its trade arguments can only be what the message says. From the user's own words
this module builds the `plan` tool's JSON schema for that one message: `amount` is an enum of exactly the numbers
the message contains (absent when it has none), `asset` only the assets it names (only those its numbers are
written in, when any is: "250 usd worth of weth" -> USDC), `side` only the sides it names (a buy/sell verb, or
the direction of a swap); `intent` keeps the full enum. The schema serves backends that
constrain by schema; `plan_grammar` turns it into the llama.cpp grammar of the whole trained reply
(`<tool_call>\\n{"name": "plan", "arguments": {...}}\\n</tool_call>`), with keys in the trained order and
numbers printed as the training data prints them (`PlanCall.arguments`: whole amounts as `1`, never `1.0`).

Decisions (tests pin them): "1,000" -> 1000, ".5" -> 0.5, "2.0" -> 2, "$100" -> 100, "2k" -> 2000 (a `k`
suffix means thousands, as users mean it); numbers inside words ("p1", "v3") are not amounts; spelled-out
numbers ("one", "half") are not offered, so no amount can be planned from them. ETH/WETH/ether/Ethereum name
ETH; USDC/USD/dollars/bucks/"$" name USDC. A one-letter slip in a name of 4+ letters ("ehter", "slel") still
names it, as the training phrasings contain such typos. The safety review (agent.turn.safety) is unchanged:
constraining what the planner can write never makes a message allowed to trade.
"""

from __future__ import annotations

import json
import re
from typing import Any

from finetune.plan_call import INTENTS

_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(k\b)?(?![\d])", re.I)
_WORD = re.compile(r"[a-z]+|\$")

ETH_WORDS = ("eth", "weth", "ether", "ethereum")
USDC_WORDS = ("usdc", "usd", "dollar", "dollars", "bucks", "$")
BUY_WORDS = ("buy", "buying", "bought", "buys", "get", "getting", "got", "purchase", "purchasing", "acquire",
             "grab", "pick", "picking", "picked")  # "pick up"
SELL_WORDS = ("sell", "selling", "sold", "sells", "dump", "dumping", "dumped", "offload", "offloading", "offloaded",
              "unload", "unloading", "unloaded")
# Verbs whose direction is the asset given: "swap 1 eth for usdc" sells ETH, "spend 100 usdc on eth" buys it.
SWAP_WORDS = ("swap", "swapping", "swapped", "convert", "converting", "converted", "trade", "trading", "traded",
              "exchange", "exchanging", "exchanged", "spend", "spending", "spent", "put", "putting")


def _near(word: str, name: str) -> bool:
    """`word` is `name` or one slip away (a letter swapped, dropped or doubled) for names of 4+ letters."""
    if word == name:
        return True
    if len(name) < 4 or abs(len(word) - len(name)) > 1:
        return False
    if len(word) == len(name):
        diff = [i for i, (a, b) in enumerate(zip(word, name)) if a != b]
        return len(diff) == 2 and diff[1] == diff[0] + 1 and word[diff[0]] == name[diff[1]] \
            and word[diff[1]] == name[diff[0]]
    short, long_ = (word, name) if len(word) < len(name) else (name, word)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _names(word: str, names: tuple[str, ...]) -> bool:
    return any(_near(word, n) for n in names)


def written_amounts(text: str) -> list[float]:
    """The numbers the message contains, as written, in order of appearance, each once; zero is never an amount."""
    out: list[float] = []
    for m in _NUMBER.finditer(text):
        value = float(m.group(1).replace(",", "")) * (1000 if m.group(2) else 1)
        if value > 0 and value not in out:
            out.append(value)
    return out


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def named_assets(text: str) -> list[str]:
    """The assets the message names, in the schema's order (ETH, USDC)."""
    words = _words(text)
    found = {"ETH": any(_names(w, ETH_WORDS) for w in words), "USDC": any(_names(w, USDC_WORDS) for w in words)}
    return [a for a in ("ETH", "USDC") if found[a]]


def amount_assets(text: str) -> list[str]:
    """The assets the message writes its amounts in: the name right after a number ("0.3 eth", "250 usd worth
    of weth") or a "$" right before it; in the schema's order. Empty when no number carries an asset."""
    found = set()
    for m in _NUMBER.finditer(text):
        after = _words(text[m.end():m.end() + 24])[:1]
        if after and _names(after[0], ETH_WORDS):
            found.add("ETH")
        elif (after and _names(after[0], USDC_WORDS)) or text[:m.start()].rstrip().endswith("$"):
            found.add("USDC")
    return [a for a in ("ETH", "USDC") if a in found]


def named_sides(text: str) -> list[str]:
    """The sides the message names: a buy or sell verb, or a swap verb whose direction the first asset after it
    gives (ETH given: sell; USDC given: buy); a swap verb with no asset after it allows both."""
    words = _words(text)
    sides = set()
    for i, w in enumerate(words):
        if _names(w, BUY_WORDS):
            sides.add("buy")
        elif _names(w, SELL_WORDS):
            sides.add("sell")
        elif _names(w, SWAP_WORDS):
            given = next((a for a in words[i + 1:] if _names(a, ETH_WORDS) or _names(a, USDC_WORDS)), None)
            if given is None:
                sides |= {"buy", "sell"}
            else:
                sides.add("sell" if _names(given, ETH_WORDS) else "buy")
    return [s for s in ("buy", "sell") if s in sides]


def as_written(value: float) -> int | float:
    """A number as the model was trained to print it (PlanCall.arguments): whole amounts as integers."""
    return int(value) if float(value).is_integer() else value


def message_plan_schema(text: str) -> dict[str, Any]:
    """The `plan` arguments' JSON schema for this message: trade arguments only as the message writes them.

    Key order is the trained one (intent, side, amount, asset); a key with nothing named is left out, so the
    model cannot write it. Number enums hold ints for whole amounts: a JSON-schema grammar prints enum values
    with json.dumps, and `1.0` is not what the model was trained to write."""
    props: dict[str, Any] = {"intent": {"type": "string", "enum": list(INTENTS)}}
    sides, amounts = named_sides(text), written_amounts(text)
    assets = amount_assets(text) or named_assets(text)  # `asset` is what the amount is in, when written
    if sides:
        props["side"] = {"type": "string", "enum": sides}
    if amounts:
        props["amount"] = {"type": "number", "enum": [as_written(a) for a in amounts]}
    if assets:
        props["asset"] = {"type": "string", "enum": assets}
    return {"type": "object", "properties": props, "required": ["intent"], "additionalProperties": False}


def plan_grammar(text: str) -> str:
    """The GBNF grammar of the whole trained reply for this message: the `<tool_call>` block calling `plan`
    with arguments that satisfy `message_plan_schema(text)` (converted by llama-cpp-python's own converter)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    args = json_schema_to_gbnf(json.dumps(message_plan_schema(text)), prop_order=["intent", "side", "amount", "asset"])
    args = re.sub(r"^root ::=", "plan-arguments ::=", args, flags=re.M)
    head = json.dumps('<tool_call>\n{"name": "plan", "arguments": ')
    tail = json.dumps("}\n</tool_call>")
    return f"root ::= {head} plan-arguments {tail}\n{args}\n"
