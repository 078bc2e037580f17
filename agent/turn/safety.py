"""The agent never trades on a question or a refusal: a deterministic check of the user's own words.

Whatever planned a turn (the keyword router, a small model, a strong model calling tools natively), its trade
is checked against the message that asked for it, after planning and again where the tools run:

    check = check_message(text)        # an explicit order? anything that forbids trading on this message?
    review = review_plan(check, intent, side=..., amount=..., asset=...)   # may the plan trade? may --yes run it?
    gate = TradeGate.for_message(check)   # ToolSession enforces the same rules on every propose/execute call

Rules, each reported as a `Finding` with the words that triggered it:
- A question ("should I sell 2 ETH?"), a negation ("do not sell 0.5 ETH"), a hypothetical, conditional or
  future trade ("what if", "sell if it drops", "tomorrow"), quoted or reported speech ('"sell 0.5 ETH"', "he
  told me to sell"), an attempt to change the agent's rules ("ignore your rules"), a deferred confirmation
  ("yes but first ...") or more than one order: no trade at all, not even a proposal.
- An explicit order is one imperative trade (verb, amount or "all", asset) after at most a polite lead-in
  ("please", "I want to", "could you") and with none of the findings above. Only an explicit order may run
  without asking (`--yes`), and only exactly as written: same side, amount, asset and venue.
A false positive costs a quote instead of a proposal; a false negative costs money, so the rules lean one way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["question", "negation", "hypothetical", "quoted", "reported", "rule_change", "deferral", "multiple"]
TRADE_INTENTS = ("propose", "execute")

# -- normalisation ---------------------------------------------------------------------------------------------
_TRANSLATE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"',
                            "\u2014": " - ", "\u2013": " - ", "\u00a0": " "})


def normalise(text: str) -> str:
    """Lower case, straight quotes, single spaces: what every rule below reads."""
    return re.sub(r"\s+", " ", (text or "").translate(_TRANSLATE)).strip().lower()


# -- trade mentions --------------------------------------------------------------------------------------------
_NUM = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
_ETH = r"(?:w?eth|ether)"
_USD = r"(?:usdc|usd|dollars?|bucks)"
_BUY, _SELL, _SWAP = r"buy|purchase|acquire|get", r"sell|dump|offload|unload", r"swap|convert|exchange|trade"
_VERB = rf"(?:{_BUY}|{_SELL}|{_SWAP}|spend)"
_OF_ETH = rf"(?:\s+(?:worth\s+)?(?:of|in)\s+{_ETH})"
_TO = rf"(?:\s+(?:for|to|into)\s+(?P<to>{_ETH}|{_USD}))?"
_MENTIONS = [
    # "sell 0.5 eth", "buy 100 usdc worth of eth", "swap 0.2 eth for usdc", "get me 0.1 eth", "buy $100 of eth"
    ("amount", re.compile(rf"\b(?P<verb>{_VERB})\s+(?:me\s+)?(?:some\s+)?(?:(?P<usd>\$)\s*)?{_NUM}\s*"
                          rf"(?P<asset>{_ETH}|{_USD})?(?P<of>{_OF_ETH})?{_TO}\b")),
    # "buy eth with 200 usdc", "buy some eth for $200"
    ("with", re.compile(rf"\b(?P<verb>{_BUY})\s+(?:some\s+|more\s+)?{_ETH}\s+(?:with|for|using)\s+\$?\s*{_NUM}\s*"
                        rf"(?P<asset>{_USD})?\b")),
    # "sell all my eth", "swap everything to usdc", "dump my whole eth"
    ("all", re.compile(rf"\b(?P<verb>{_SELL}|{_SWAP})\s+(?:all(?:\s+of)?|everything|(?:my|the)\s+(?:whole|entire))"
                       rf"(?:\s+(?:my|the))?(?:\s+(?P<asset>{_ETH}|{_USD}))?{_TO}\b")),
]
_VENUE = re.compile(r"\b(?:on|via|using|through)\s+(?:the\s+)?(?:uniswap\s+)?(v[234])\b|\buniswap\s+(v[234])\b")


@dataclass(frozen=True)
class Order:
    """A trade as the user wrote it. `side` is of ETH (buy = USDC -> ETH); `amount` is in `asset`;
    `everything` means the wallet's whole ETH ("sell all my ETH"). `ambiguous` when the words allow two
    readings ("buy 100 USDC": spend 100 USDC, or receive it?)."""

    side: Literal["buy", "sell"]
    asset: Literal["ETH", "USDC"]
    amount: float | None = None
    everything: bool = False
    venue: str | None = None
    ambiguous: bool = False
    start: int = 0  # where the mention starts in the normalised text

    def describe(self) -> str:
        venue = f" on {self.venue}" if self.venue else ""
        if self.everything:
            return f"sell all your ETH{venue}"
        if self.asset == "ETH":
            return f"{self.side} {self.amount:g} ETH{venue}"
        return f"{self.side} ETH {'with' if self.side == 'buy' else 'for'} {self.amount:g} USDC{venue}"


def _amount(text: str) -> float:
    return float(text.replace(",", ""))


def _order(kind: str, m: re.Match, venue: str | None) -> Order:
    verb = m.group("verb")
    asset_word = m.groupdict().get("asset") or ""
    usd = kind == "with" or bool(m.groupdict().get("usd")) or re.fullmatch(_USD, asset_word) is not None
    if kind == "all":  # all of the wallet's ETH; "sell all my USDC" is not supported: never an explicit order
        return Order("sell", "ETH", everything=True, venue=venue, ambiguous=usd, start=m.start())
    amount = _amount(m.group(3 if kind == "amount" else 2))
    asset = "USDC" if usd or verb == "spend" else "ETH"
    ambiguous = not asset_word and kind == "amount" and not m.groupdict().get("usd")  # "sell 0.5": 0.5 what?
    to = m.groupdict().get("to") or ""
    if verb == "spend" or kind == "with":
        side = "buy"
    elif re.fullmatch(_SWAP, verb):
        side = "sell" if asset == "ETH" else "buy"  # swapping USDC means buying ETH
        ambiguous |= bool(to) and (re.fullmatch(_ETH, to) is not None) == (asset == "ETH")  # "swap 1 eth for eth"
    else:
        side = "buy" if re.fullmatch(_BUY, verb) else "sell"
        # "buy 100 usdc" could mean receiving USDC; "buy 100 usdc worth of eth" cannot
        ambiguous |= asset == "USDC" and not m.groupdict().get("of") and not m.groupdict().get("usd")
    return Order(side, asset, amount, venue=venue, ambiguous=ambiguous, start=m.start())


def find_orders(text: str) -> list[Order]:
    """Every trade the (normalised) text mentions, in order of appearance, whatever its mood."""
    norm = normalise(text)
    vm = _VENUE.search(norm)
    venue = (vm.group(1) or vm.group(2)) if vm else None
    found: dict[int, Order] = {}
    for kind, pattern in _MENTIONS:
        for m in pattern.finditer(norm):
            if not any(abs(m.start() - s) < 3 for s in found):
                found[m.start()] = _order(kind, m, venue)
    return [found[k] for k in sorted(found)]


# -- what forbids trading ----------------------------------------------------------------------------------------
_LEAD_IN = re.compile(
    r"^(?:(?:please|pls|plz|kindly|ok|okay|alright|right|now|yes|yeah|yep|sure|just|hey|hi|hello|trader|agent|"
    r"go ahead and|i want to|i wanna|i'd like to|i would like to|i need to|let's|lets|let us|can you|could you|"
    r"will you|can u|could u)\b[\s,:;!.-]*)*")
# polite requests and wishes are not hypotheticals or questions ("could you sell", "I would like to buy")
_POLITE = re.compile(r"\b(?:i'd like|i would like|would like|(?:can|could|will) (?:you|u))\b")
_CLAUSE = r"(?:^|[.;:!?,]\s*|\b(?:and|but|so|or)\s+)"
_RULES: list[tuple[Kind, re.Pattern]] = [
    ("question", re.compile(r"\?")),
    ("question", re.compile(
        _CLAUSE + r"(?:should|shall|would|does|did|is|are|am|was|were|may|might|must|can|could|will|"
        r"do(?!\s+(?:it|that|this)\b))\s+"
        r"(?:i|we|you|u|it|that|this|there|they|now|eth|selling|buying|the|my|a)\b")),
    ("question", re.compile(_CLAUSE + r"(?:what|what's|whats|when|where|why|how|which|who|whom)\b")),
    ("question", re.compile(
        r"\b(?:whether|wonder(?:ing)?|curious|thoughts?|opinions?|advice|advise|recommend(?:ation)?s?|good idea|"
        r"bad idea|wise|smart move|worth it|makes? sense|tell me if|let me know if|any idea|explain|or not)\b")),
    ("negation", re.compile(
        r"\b(?:not|no|never|don't|dont|do n't|doesn't|doesnt|didn't|didnt|won't|wont|wouldn't|shouldn't|shouldnt|"
        r"mustn't|can't|cant|cannot|nope|nah|stop|cancel(?:led)?|abort|avoid|refrain|hold off|quit|cease|halt|"
        r"forget it|forget about|never ?mind|scratch that|changed my mind|no need|rather not|instead of|neither|"
        r"nor|none|nothing|without (?:selling|buying|swapping))\b")),
    ("hypothetical", re.compile(
        r"\b(?:if|unless|suppose|supposing|imagine|imagining|hypothetical(?:ly)?|in theory|theoretically|"
        r"let's say|lets say|say i|assume|assuming|pretend(?:ing)?|were to|in case|scenario|simulat(?:e|ing|ion)|"
        r"maybe|perhaps|possibly|might|thinking|think|thought|guess|believe|feel like|reckon|consider(?:ing)?|"
        r"contemplating|plan(?:ning)? to|going to|gonna|intend(?:ing)?|tomorrow|tonight|later|next (?:week|"
        r"month|year|time|hour)|someday|eventually|soon|once|when the price|when eth|limit order|stop loss|"
        r"take profit|(?:at|above|below|under|over) \$?\d[\d,.]*|example|e\.g\.|for instance|jk|just kidding|kidding|"
        r"joking|joke|lol|lmao|haha|test(?:ing)?|demo|dry run|practice|would|could have|should have|had i)\b")),
    ("quoted", re.compile(r"[\"`]|(?<![a-z])'|'(?![a-z])")),
    ("reported", re.compile(
        r"\b(?:said|says|saying|told|tells|telling|tell(?:s)? me to|wrote|writes|written|posted|tweet(?:s|ed)?|"
        r"claims?|claimed|heard|read (?:that|somewhere|online)|according to|mentioned|suggests?|suggested|"
        r"recommends|recommended|advises|advised|wants? me to|asked me to|reckons|thinks|believes|predicts?|"
        r"rumou?rs?|news|article|blog|newsletter|post|message|e-?mail|dm|friend|wife|husband|boss|brother|"
        r"sister|colleague|guru|influencer|analyst|someone|somebody|everyone|people|they|he|she|his|her|their|"
        r"youtube|reddit|twitter|telegram|discord|chatgpt|gpt|bot)\b")),
    ("rule_change", re.compile(
        r"\b(?:ignor(?:e|ing)|disregard|forget (?:your|all|the|previous|prior|any|every)|overrid(?:e|ing)|bypass|"
        r"circumvent|get around|jailbreak|unrestricted|unfiltered|developer mode|dev mode|god mode|admin\w*|"
        r"sudo|root access|system prompt|system:|instructions?|rules?|guardrails?|safeguards?|safety|limits?|"
        r"restrictions?|risk checks?|kill switch|confirmations?|without (?:asking|confirming|checking|approval|"
        r"permission|(?:any )?checks?)|as (?:your|the) (?:developer|admin|owner|creator|operator)|don't ask|dont ask|no questions|you are now|you're now|act as|pretend to be|role-?play|"
        r"from now on|new rule|always (?:execute|trade|sell|buy|say yes)|auto-?execute|i am (?:the|your) "
        r"(?:developer|admin|owner|creator|operator)|authori[sz](?:e|ed|es|ation)|permission|override code|"
        r"password)\b")),
    ("deferral", re.compile(
        r"\b(?:but|first|before|after|afterwards|wait|hold on|hang on|not yet|in a (?:minute|moment|bit|sec|"
        r"second)|one sec|give me a (?:sec|second|minute)|let me (?:think|check|see)|hmm+)\b")),
]
_CONFIRM = re.compile(
    r"^(?:(?:yes|y|yep|yeah|yup|sure|ok|okay|confirm(?:ed)?|execute(?: it| that| the (?:swap|proposal|trade))?|"
    r"do it|go ahead|proceed|send it|approved?|let's go|lets go|please|now)[\s,.!]*)+$")
_TRADE_WORD = re.compile(r"\b(?:sell|buy|swap|convert|dump|purchas|sold|bought)\w*")
_CONFIRM_START = re.compile(r"^(?:yes|y|yep|yeah|yup|sure|ok|okay|confirm|execute|do it|go ahead|proceed|send it)\b")
_WHY = {
    "question": "it is a question", "negation": "it says not to", "hypothetical": "it is hypothetical, "
    "conditional or not meant for now", "quoted": "the trade is quoted text", "reported": "it reports what "
    "someone else said", "rule_change": "it tries to change the agent's rules", "deferral": "it defers or "
    "attaches a condition", "multiple": "it names more than one trade",
}
_PRIORITY = ("rule_change", "negation", "quoted", "reported", "hypothetical", "question", "deferral", "multiple")
_NO_TRADE_ASKED = 'no trade placed: your message does not ask for one; to trade, say e.g. "sell 0.5 ETH"'


@dataclass(frozen=True)
class Finding:
    kind: Kind
    evidence: str  # the words that triggered the rule


@dataclass(frozen=True)
class MessageCheck:
    """What a user message allows. `order` is set only for an explicit order (see the module docstring)."""

    text: str
    findings: tuple[Finding, ...] = ()
    mentions: tuple[Order, ...] = ()
    order: Order | None = None
    confirmation: bool = False  # the whole message is a plain "yes / execute it"

    @property
    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}

    @property
    def may_trade(self) -> bool:
        return not self.findings

    @property
    def about_trade(self) -> bool:
        """Does the message name a trade or answer a proposal ("yes, but ...")? Then a refusal is worth saying."""
        norm = normalise(self.text)
        return bool(self.mentions) or bool(_TRADE_WORD.search(norm)) or _CONFIRM_START.match(norm) is not None

    def reason(self) -> str | None:
        """One line a user can act on, or None when nothing forbids trading."""
        if not self.findings:
            return None
        first = min(self.findings, key=lambda f: _PRIORITY.index(f.kind))  # the reason that matters most
        if first.kind == "negation":
            return f"no trade placed: your message says not to ({first.evidence!r})"
        if first.kind == "rule_change":
            return (f"no trade placed: your message tries to change the agent's rules ({first.evidence!r}); "
                    "they do not change")
        why = "; ".join(dict.fromkeys(_WHY[f.kind] for f in self.findings))
        hint = f'say "{self.mentions[0].describe()}"' if len(self.mentions) == 1 else 'say e.g. "sell 0.5 ETH"'
        return f"no trade placed: your message is not an order ({why}: {first.evidence!r}); to trade, {hint}"


def check_message(text: str) -> MessageCheck:
    """Classify a user message; deterministic and cheap (regular expressions over the normalised text)."""
    norm = normalise(text)
    scan = _POLITE.sub(" ", _LEAD_IN.sub("", norm, count=1))
    lead = _LEAD_IN.match(norm)
    findings: list[Finding] = []
    for kind, pattern in _RULES:
        m = pattern.search(scan)
        if m and kind not in {f.kind for f in findings}:
            findings.append(Finding(kind, m.group(0).strip() or m.group(0)))
    mentions = tuple(find_orders(norm))
    if len(mentions) > 1:
        findings.append(Finding("multiple", ", ".join(o.describe() for o in mentions)))
    order = None
    if not findings and len(mentions) == 1:
        m0 = mentions[0]
        if m0.start == (lead.end() if lead else 0) and not m0.ambiguous:
            order = m0
    confirmation = not findings and not mentions and _CONFIRM.match(norm) is not None
    return MessageCheck(text, tuple(findings), mentions, order, confirmation)


# -- after planning --------------------------------------------------------------------------------------------

def matches(order: Order, side: str | None, amount: float | None, asset: str | None, venue: str | None = None) -> bool:
    """Does a planned trade do exactly what the order says?"""
    if side != order.side or (asset or "ETH").upper() != order.asset:
        return False
    if (venue or None) != (order.venue or None):
        return False
    if order.everything:  # the wallet's balance, read at run time; only its sign can be checked here
        return amount is None or amount > 0
    return amount is not None and order.amount is not None and math.isclose(float(amount), order.amount,
                                                                           rel_tol=1e-9, abs_tol=1e-12)


@dataclass(frozen=True)
class PlanReview:
    """The verdict on one planned intent: may it trade, may it run without asking, and if not, why."""

    trade: bool  # the plan may propose (or, for `execute`, execute) a swap
    auto_execute: bool  # a scripted yes (`--yes`) may execute it without asking a person
    reason: str | None = None  # why a trade was stopped or not auto-executed (shown to the user)


def review_plan(check: MessageCheck, intent: str, side: str | None = None, amount: float | None = None,
                asset: str | None = None, venue: str | None = None) -> PlanReview:
    """Check a plan against the message it came from. Non-trade intents pass untouched."""
    if intent not in TRADE_INTENTS:
        return PlanReview(trade=False, auto_execute=False)
    if not check.may_trade:
        return PlanReview(False, False, check.reason())
    if intent == "execute":
        if check.confirmation:
            return PlanReview(True, False)
        return PlanReview(False, False, "no trade placed: executing a proposal needs a plain confirmation "
                                        'such as "yes, execute it"')
    if not check.mentions:
        return PlanReview(False, False, _NO_TRADE_ASKED)
    if check.order is None:
        return PlanReview(True, False, "--yes executes only an explicit order written in the same message, "
                                       'such as "sell 0.5 ETH"; this proposal needs your confirmation')
    if not matches(check.order, side, amount, asset, venue):
        planned = f"{side} {amount} {asset}" + (f" on {venue}" if venue else "")
        return PlanReview(True, False, f"the planned trade ({planned}) is not the order in your message "
                                       f"({check.order.describe()}); it needs your confirmation")
    return PlanReview(True, True)


@dataclass
class TradeGate:
    """The same rules where the tools run, so no planner (or native tool call) can go around them.

    `ToolSession` asks it before every proposal and every execution; a refusal is the one-line reason.
    Closed by default: nothing trades until a user message, an explicit command or `trader run --execute`
    opens it.
    """

    check: MessageCheck | None = None
    autonomous: bool = False  # `trader run --execute`: the user opted in to the policy trading by itself
    proposed: set[str] = field(default_factory=set)  # proposals made under this gate (this turn)

    @classmethod
    def for_message(cls, text_or_check: str | MessageCheck) -> "TradeGate":
        check = text_or_check if isinstance(text_or_check, MessageCheck) else check_message(text_or_check)
        return cls(check=check)

    @classmethod
    def for_command(cls, side: str, amount: float, asset: str, venue: str | None = None) -> "TradeGate":
        """A slash command (`/swap sell 0.5 ETH`) is an explicit order by construction."""
        order = Order(side, asset.upper(), float(amount), venue=venue)  # type: ignore[arg-type]
        return cls(check=MessageCheck(f"/swap {order.describe()}", order=order, mentions=(order,)))

    @classmethod
    def for_autonomous_run(cls) -> "TradeGate":
        return cls(autonomous=True)

    def allow_proposal(self, side: str, amount: float, asset: str, venue: str | None = None) -> str | None:
        """None if a proposal may be prepared, else why not."""
        if self.autonomous:
            return None
        if self.check is None:
            return "no trade placed: no user message asked for one"
        if self.check.may_trade and not self.check.mentions:
            return _NO_TRADE_ASKED
        return self.check.reason()

    def allow_execution(self, proposal_id: str, side: str, amount: float, asset: str, venue: str | None,
                        auto: bool) -> str | None:
        """None if the proposal may be executed (a person still confirms unless `auto`), else why not."""
        if self.autonomous:
            return None
        if self.check is None:
            return "not executed: no user message asked for it"
        if not self.check.may_trade:
            return self.check.reason()
        if auto:
            if self.check.order is None:
                return ("not executed: --yes executes only an explicit order written in the same message, "
                        'such as "sell 0.5 ETH"')
            if not matches(self.check.order, side, amount, asset, venue):
                return f"not executed: it is not the order in your message ({self.check.order.describe()})"
            return None
        if proposal_id in self.proposed or self.check.confirmation or self.check.order is not None:
            return None
        return 'not executed: executing a proposal needs a plain confirmation such as "yes, execute it"'
