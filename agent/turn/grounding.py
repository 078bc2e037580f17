"""Does an answer say only what the tools said? Every number, venue, date, hash and claimed trade is checked.

A model's answer may round (1589.33 -> "1,589.3" or "about 1,590") or truncate, but every figure it states
must be a figure from the tool results (or the user's own message), at the precision it is written with;
"1589.32 USDC on v4" for a v2 pool at 1589.33 fails twice. An answer that fails is replaced by the tools'
facts (agent.turn.planner), so a user never reads a misquote.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from agent.turn.tools import ToolCall

_HEX = re.compile(r"\b0x[0-9a-f]+\b")
_ID = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{8,}\b")  # proposal ids: hex with letters and digits
_VENUE = re.compile(r"\b(?:uniswap\s*)?(v\d)\b")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_TIME = re.compile(r"\b\d{1,2}:\d{2}\b")
_NUMBER = re.compile(r"(?<![\w.])(-|\+)?\$?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
                     r"(?:\s?(k|thousand|mn|million|bn|billion)\b)?(\s?(?:%|percent|pct\b))?(?![\d])")
_MULTIPLIER = {"k": 1e3, "thousand": 1e3, "mn": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}
_CLAIM = re.compile(r"\b(sold|bought|swapped|executed|filled|completed|placed (?:the|your|a|an) (?:trade|order|swap)|"
                    r"(?:trade|order|swap|transaction) (?:is |was |has been )?"
                    r"(?:done|sent|confirmed|mined|executed))\b")
_NEGATED = re.compile(r"\b(not|no|never|n't|nothing|without|needs?|would|will|could|can|if)\b|n't\b")


@dataclass
class Grounding:
    ok: bool
    problems: list[str] = field(default_factory=list)


@dataclass
class _Sources:
    numbers: list[float] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)

    def add(self, value: Any, key: str = "") -> None:
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, (int, float)):
            if math.isfinite(value):
                self.numbers.append(abs(float(value)))
                if 1e9 <= value <= 5e9 and ("time" in key or "timestamp" in key or "deadline" in key):
                    self.strings.append(time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(value))))
        elif isinstance(value, str):
            self.strings.append(value.lower())
            self.text(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                self.text(str(k))
                self.add(v, str(k).lower())
        elif isinstance(value, (list, tuple)):
            for v in value:
                self.add(v, key)

    def text(self, text: str) -> None:
        for m in re.finditer(r"\d[\d,]*(?:\.\d+)?", text):
            self.numbers.append(float(m.group(0).replace(",", "")))


def _precision(digits: str) -> float:
    """The rounding step a written number implies: 0.01 for "1.25", 10 for "1,590", 1 for "1,600" (a price
    rounded to fewer than 3 significant digits is a different price, not a rounding)."""
    if "." in digits:
        return 10.0 ** -len(digits.split(".")[1])
    whole = digits.replace(",", "").lstrip("0") or "0"
    zeros = len(whole) - len(whole.rstrip("0"))
    return 10.0 ** zeros if 0 < zeros <= len(whole) - 3 else 1.0


def _matches(stated: float, step: float, sources: list[float]) -> bool:
    for v in sources:
        if abs(v - stated) <= step / 2 + 1e-9 * max(1.0, v) or 0 <= v - stated < step:  # rounded or truncated
            return True
    return False


def check_answer(answer: str, question: str, calls: list[ToolCall], notes: tuple[str, ...] = ()) -> Grounding:
    """Check every figure `answer` states against the tool results, the question and any notes shown with them."""
    src = _Sources()
    for c in calls:
        if c.ok:
            src.add(c.result)
        else:
            src.text(c.error or "")
    for extra in (question, *notes):
        src.add(extra)
    text = answer.lower()
    problems: list[str] = []
    for m in _HEX.finditer(text):
        if len(m.group(0)) < 8 or not any(s.startswith(m.group(0)) or m.group(0) in s for s in src.strings):
            problems.append(f"hash {m.group(0)} is not in the tool results")
    text = _HEX.sub(" ", text)
    for m in _ID.finditer(text):
        if not any(m.group(0) in s for s in src.strings):
            problems.append(f"id {m.group(0)} is not in the tool results")
    text = _ID.sub(" ", text)
    venues = {v for s in src.strings for v in _VENUE.findall(s)}
    for m in _VENUE.finditer(text):
        if m.group(1) not in venues:
            problems.append(f"venue {m.group(1)} (the tools used {', '.join(sorted(venues)) or 'no venue'})")
    text = _VENUE.sub(" ", text)
    for pattern in (_DATE, _TIME):
        for m in pattern.finditer(text):
            if not any(m.group(0) in s for s in src.strings):
                problems.append(f"time {m.group(0)} is not in the tool results")
        text = pattern.sub(" ", text)
    for m in _NUMBER.finditer(text):
        digits, mult, pct = m.group(2), m.group(3), m.group(4)
        scale = _MULTIPLIER.get(mult or "", 1.0)
        stated, step = float(digits.replace(",", "")) * scale, _precision(digits) * scale
        pool = src.numbers + ([100 * v for v in src.numbers] if pct else [])
        if not _matches(stated, step, pool):
            problems.append(f"{m.group(0).strip()} is not a figure from the tools")
    if not any(c.ok and c.name == "execute_swap" for c in calls):
        for sentence in re.split(r"(?<=[.!?])\s+", answer.lower()):
            if _CLAIM.search(sentence) and not _NEGATED.search(sentence):
                problems.append(f"claims a trade that did not happen: {sentence.strip()[:80]!r}")
    return Grounding(ok=not problems, problems=problems)
