"""Market context for the agent: which candle feed the policy reads, the policy's signal as the agent reports it,
and the trader model asked the seed's question with real numbers.

`policy_signal` is the one place that reads rl's `Signal`: everything else in agent/ uses `PolicyView`. It
holds (HOLD with the reason) when the feed's latest bar is stale or when the continuous bars up to it do not
cover the policy's look-back; it never pads a short live history with invented bars. How many bars a look-back
needs comes from the policy's own config (`needed_bars`), and so does how much real history `trader chain up`
bakes into a new replica (`chain_history_bars`): onchain/ knows no policy, it is handed the number.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from finetune.llm_backends.chat_models import LLM
from trader_core.feed import CandleFeed, DatasetFeed, MarketSnapshot

_ACTION = re.compile(r"\b(BUY|SELL|HOLD)\b", re.IGNORECASE)
HISTORY_MARGIN_BARS = 24  # a day of bars beyond the look-back: a replica's history covers it with room to spare


class PolicyView(BaseModel):
    """The policy's decision on the feed's latest bar, with where the bars came from and how old they are."""

    action: Literal["BUY", "SELL", "HOLD"]
    agreement: float = Field(description="share of the policy's ensemble members that chose this action (1.0 for "
                             "one model; 0 when it holds for safety: then no member voted, see `voted`)")
    voted: bool = Field(True, description="the policy decided on these bars; False when it holds for safety "
                        "(stale data, look-back not covered, model fault) and `reason` says why")
    q_margin: float = Field(0.0, description="chosen action's Q-value minus the best other's, in the network's units")
    reason: str | None = Field(None, description="why it holds: stale data, look-back not covered, model fault")
    price: float = Field(description="close of the latest bar, USDC per ETH")
    bar_time: int = Field(description="open time of the latest bar (unix seconds)")
    bar_age_s: int = Field(description="seconds since that bar closed, on the feed's clock (0: current bar)")
    stale: bool
    position: float = Field(description="fraction of the wallet in ETH the policy was given (0..1)")
    wallet: str = Field(description="whose position: the chain wallet, the paper wallet, or assumed flat")
    eth: float | None = Field(None, description="the wallet's ETH (incl. WETH) the position was computed from; "
                              "None when the position was given as a fraction")
    usdc: float | None = Field(None, description="the wallet's USDC, as `eth`")
    data: str = Field(description="where the candles came from")
    live_bars: int
    continuous_bars: int = Field(description="gap-free bars ending at the latest bar")
    first_bar_time: int = Field(0, description="open time of the first of those continuous bars (unix seconds)")
    bars: int = Field(0, description="bars the feed showed (all sources, gaps included)")
    live_first_bar_time: int | None = Field(None, description="open time of the first bar that came from the live "
                                            "source (the chain's own history and swaps); None without one")
    needed_bars: int = Field(description="bars the policy's features need (its look-back)")
    q_values: list[float] = []
    features: dict[str, float] = {}
    observation: dict[str, float] = Field(default_factory=dict, description="the exact vector the policy's network "
                                          "read on these bars, by name (empty when no features could be made)")
    raw_action: str = "HOLD"
    about: str = Field("", description="the policy: algorithm, recipe, training budget, what it was measured worth")
    policy_action: Literal["BUY", "SELL", "HOLD"] = Field("HOLD", description="what the policy chose on these bars "
                                                          "before the stale / look-back check")


def utc(ts: int | float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(ts)))


def human_duration(seconds: float) -> str:
    s = int(seconds)
    for unit, size in (("day", 86_400), ("h", 3600), ("min", 60)):
        if s >= size:
            n = s / size
            return f"{n:.0f} {unit}{'s' if unit == 'day' and round(n) != 1 else ''}"
    return f"{s} s"


def needed_bars(config) -> int:
    """Bars a policy trained with `config` (rl.training.config.TrainConfig) needs to decide: its look-back plus the bar
    it decides on."""
    return int(config.features.lookback) + 1


def chain_history_bars(policy: str = "default") -> int:
    """Bars of real history a new replica should carry for `policy` to speak at once: what it needs plus a day.
    Reads only the run's config (no model, no torch)."""
    from rl.training.config import load_train_config
    from rl.policy import resolve_run

    return needed_bars(load_train_config(resolve_run(policy))) + HISTORY_MARGIN_BARS


def history_feed(policy) -> DatasetFeed:
    """The policy's own training data: the history live bars continue (and what is shown without a chain)."""
    return DatasetFeed(policy.config.data, policy.config.interval)


def chain_feed(chain, history: CandleFeed | None, venue: str | None = None, bars: int | None = None) -> CandleFeed:
    """The pool's candles continuing `history`; its first read reaches back at least `bars` bars of chain time."""
    from onchain.market.feed import ChainFeed

    return ChainFeed(chain, venue=venue, history=history, bars=bars)


def policy_signal(policy, snapshot: MarketSnapshot, position: float, wallet: str) -> PolicyView:
    """Ask `policy` about the snapshot's latest bar holding `position`; HOLD with a reason on stale or short data."""
    candles = snapshot.candles
    if candles.volume is not None and "volume_z" not in policy.feature_names:
        # a policy trained without volume reads prices only (live chain bars carry swap volume)
        from dataclasses import replace

        candles = replace(candles, volume=None)
    # the feed's clock (chain time on a replica, the bar close on a replay) judges staleness, not the wall clock
    sig = policy.signal(candles=candles, position=position, now=snapshot.now)
    needed = needed_bars(policy.config)
    run = snapshot.continuous_bars
    view = PolicyView(action=sig.action, agreement=float(sig.agreement), voted=sig.reason is None,
                      q_margin=float(sig.q_margin), reason=sig.reason, price=float(sig.price),
                      bar_time=int(sig.timestamp), bar_age_s=snapshot.age_s, stale=snapshot.stale,
                      position=round(float(position), 4), wallet=wallet, data=snapshot.source,
                      live_bars=snapshot.live_bars, continuous_bars=run, needed_bars=needed,
                      first_bar_time=int(candles.timestamps[len(candles) - run]) if run else int(sig.timestamp),
                      bars=len(candles), live_first_bar_time=(int(candles.timestamps[len(candles) - snapshot.live_bars])
                                                              if snapshot.live_bars else None),
                      q_values=[float(q) for q in sig.q_values],
                      features={k: float(v) for k, v in sig.features.items() if np.isfinite(v)},
                      observation={k: float(v) for k, v in sig.observation.items() if np.isfinite(v)},
                      raw_action=sig.raw_action, policy_action=sig.action, about=_about(policy))
    no_vote = {"action": "HOLD", "agreement": 0.0, "voted": False, "q_margin": 0.0}
    bar = human_duration(snapshot.interval_s)
    if snapshot.stale:
        hold = (f"the latest bar ({utc(snapshot.last_time)}) closed {human_duration(snapshot.age_s)} ago: the "
                "market data is stale, the policy does not act on it"
                + ("; start a chain (`trader chain up`) for live prices" if not snapshot.live_bars else ""))
        return view.model_copy(update={**no_vote, "reason": hold})
    if run < needed:
        since = utc(candles.timestamps[len(candles) - run])
        hold = (f"look-back not covered: {run} continuous {bar} bar(s) since {since}, the policy needs {needed}; "
                "older history is not joined across the gap"
                + ("; on a replica, `trader chain down` then `trader chain up --fresh` bakes enough real history"
                   if snapshot.live_bars else ""))
        return view.model_copy(update={**no_vote, "reason": hold})
    return view


def wallet_signal(policy, snapshot: MarketSnapshot, eth: float, usdc: float, wallet: str) -> PolicyView:
    """`policy_signal` for a real wallet: its position is the wallet's ETH share at the bar's own price, and the
    view keeps the balances, so the signal, the trader model's question and the answer tell one story."""
    view = policy_signal(policy, snapshot, position_fraction(eth, usdc, snapshot.price), wallet)
    return view.model_copy(update={"eth": float(eth), "usdc": float(usdc)})


def vote_words(view: PolicyView) -> str:
    """'agreement 67%' for a decision the policy took; 'no vote (why)' for a HOLD forced by stale or short data
    (its agreement is 0 because nobody voted, not because the members disagreed)."""
    if view.voted:
        return f"agreement {view.agreement:.0%}"
    if view.stale:
        why = "stale data"
    elif view.continuous_bars < view.needed_bars:
        why = "look-back not covered"
    else:  # the policy's own safety switch (model fault, unexpected position): its first clause
        why = (view.reason or "held for safety").split(": ")[0].strip()
    return f"no vote: {why}"


def wallet_words(view: PolicyView) -> str:
    """The wallet as the policy took it: its real ETH share and, when the policy saw the bar, how it read it."""
    from finetune.formats import position_word

    held = "" if view.eth is None else f"{view.eth:.4f} ETH + {view.usdc or 0.0:,.2f} USDC, "
    if "position" in view.observation:
        return f"{held}{position_word(view.observation, view.position)}"
    return f"{held}{100 * view.position:.0f}% in ETH"

def _about(policy) -> str:
    describe = getattr(policy, "describe", None)  # stand-in policies in tests may not describe themselves
    return describe() if callable(describe) else ""


def position_fraction(eth: float, usdc: float, price: float) -> float:
    """Fraction of a wallet's value held in ETH, 0..1."""
    total = eth * price + usdc
    return 0.0 if total <= 0 else float(min(1.0, max(0.0, eth * price / total)))


@dataclass(frozen=True)
class MarketSummary:
    price: float
    volume: float | None
    volatility: float  # std of log returns per bar over the window
    change_pct: float
    change_hours: float


def market_summary(candles, lookback: int = 24) -> MarketSummary:
    """Price, last volume, volatility and the change over the last `lookback` bars."""
    close = candles.close[-(lookback + 1):]
    rets = np.diff(np.log(close))
    volume = None if candles.volume is None else float(candles.volume[-1])
    return MarketSummary(price=float(candles.close[-1]), volume=volume,
                         volatility=float(np.std(rets)) if rets.size else 0.0,
                         change_pct=float((close[-1] / close[0] - 1) * 100),
                         change_hours=(len(close) - 1) * (candles.interval_s or 3600) / 3600)


def trader_question(summary: MarketSummary, eth: float, usdc: float, view: PolicyView | None = None) -> str:
    """The seed's question with real numbers, formatted exactly as the fine-tune data was (finetune.formats):
    with the policy's view of the bar, what the policy saw (its whole observation) comes first, as in training,
    and the wallet is the one the view's position was computed from."""
    from finetune.formats import TraderState, question

    if view is not None and view.observation:
        if view.eth is not None:
            eth, usdc = view.eth, view.usdc or 0.0
        state = TraderState.from_signal(view, eth, usdc, volume=summary.volume)
        # the share the policy was given, to the digit: the signal line and the question round the same number
        return question(state.model_copy(update={"wallet_in_eth": view.position}))
    return question({"price": summary.price, "volume": summary.volume, "volatility": summary.volatility,
                     "price_change": summary.change_pct / 100, "eth": eth, "usdc": usdc})


def parse_action(text: str) -> str:
    """The first BUY/SELL/HOLD a model wrote, or UNKNOWN."""
    match = _ACTION.search(text or "")
    return match.group(1).upper() if match else "UNKNOWN"


class TraderOpinion(BaseModel):
    question: str
    answer: str
    action: str
    model: str
    seconds: float
    bar: str | None = None  # which feed and bar the question's numbers describe
    # the policy's view the question was made from (wallet, bar, observation): one story, shown by the demo
    view: PolicyView | None = Field(None, exclude=True, repr=False)


class TraderModel:
    """The fine-tuned trader model (Ollama trader-qwen-rl, else trader-qwen-rl in-process, else SmolLM2), opened on
    first use; in one process it shares the agent's loaded GGUF (finetune.llm_backends.runtime keeps one per settings)."""

    def __init__(self, spec: str = "auto", notify: Callable[[str], None] | None = None):
        self.spec, self.notify = spec, notify
        self._llm: LLM | None = None

    @property
    def llm(self):
        if self._llm is None:
            from finetune.llm_backends.chat_models import LLM  # langchain: only when the model is asked (`chain up` reads this module too)

            self._llm = LLM(self.spec, notify=self.notify)
            if self._llm.current.plans:  # trader-qwen-rl: decoded as its agreement was measured (greedy, no penalty)
                self._llm.set_sampling(temperature=0.0, repeat_penalty=1.0, max_tokens=96)
            else:  # other models: the Modelfile's sampling
                self._llm.set_sampling(temperature=0.25, repeat_penalty=1.1, max_tokens=100)
        return self._llm

    def ask(self, question: str) -> TraderOpinion:
        from langchain_core.messages import HumanMessage, SystemMessage

        from finetune.formats import SYSTEM_PROMPT, parse_action as parse_recommendation

        started = time.perf_counter()
        text = "".join(self.llm.stream([SystemMessage(SYSTEM_PROMPT), HumanMessage(question)])).strip()
        # The fine-tuned model ends with "RECOMMENDATION: X"; other models get the first BUY/SELL/HOLD they wrote.
        action = parse_recommendation(text) or parse_action(text)
        return TraderOpinion(question=question, answer=text, action=action, model=self.llm.label,
                             seconds=round(time.perf_counter() - started, 3))
