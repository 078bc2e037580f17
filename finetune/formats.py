"""The text contract between the policy, the training data and the fine-tuned model.

One prompt format: what the policy saw at the bar (its whole observation, in words: scaled returns,
volatility, range, volume, EMA distances, wallet position, unrealised PnL, time in trade, drawdown, previous
action; `prompts/policy_view.txt`) followed by the seed's question (`prompts/trader_question.txt`). One
response format: a short rationale built only from numbers the prompt shows, then
`RECOMMENDATION: BUY|SELL|HOLD` as the last line. One parser. The agent's `ask_trader_model` tool and
`trader finetune eval` use the same `question` and `parse_action`, so what is trained is exactly what is
read back.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

from pydantic import BaseModel, Field

ACTIONS = ("BUY", "SELL", "HOLD")
SYSTEM_PROMPT = (
    "You are an ETH/USDC trading model distilled from a reinforcement-learning policy. "
    "Give a brief rationale, then a last line: RECOMMENDATION: BUY, SELL or HOLD."
)
_RECO = re.compile(r"RECOMMENDATION[\s*]*[:\-]?[\s*]*(BUY|SELL|HOLD)\b", re.IGNORECASE)
RETURN_KEYS = tuple(f"ret_{k}" for k in range(8))


class TraderState(BaseModel):
    """One market state as the trader model is asked about it: the seed's numbers plus, when known, the
    policy's own view of the bar. `rl.policy.Decision` has exactly these fields; for a live
    `rl.policy.Signal` use `TraderState.from_signal`."""

    price: float
    price_change: float = Field(description="fractional change over the last 24 bars")
    volume: float | None = None
    volatility: float = Field(description="realised volatility per bar (fraction)")
    eth: float
    usdc: float
    observation: dict[str, float] = Field(default_factory=dict,
                                          description="the policy's observation by name (scaled), rl.Policy order")
    features: dict[str, float] = Field(default_factory=dict, description="raw market features by name")
    wallet_in_eth: float | None = Field(None, description="a live wallet's real share in ETH (0..1), when the "
                                        "policy's all-in/all-out position feature is a rounding of it")

    @classmethod
    def from_signal(cls, signal: Any, eth: float, usdc: float, volume: float | None = None) -> "TraderState":
        """A live `rl.policy.Signal` (with its observation) and the wallet -> the state the model is asked."""
        feats = dict(signal.features)
        return cls(price=float(signal.price), price_change=float(feats.get("price_change_24", 0.0)), volume=volume,
                   volatility=float(feats.get("realised_vol", 0.0)), eth=float(eth), usdc=float(usdc),
                   observation=dict(getattr(signal, "observation", {}) or {}), features=feats)


def _state(state: TraderState | dict[str, Any]) -> TraderState:
    if isinstance(state, TraderState):
        return state
    if hasattr(state, "model_dump"):
        state = state.model_dump()
    return TraderState.model_validate({k: v for k, v in dict(state).items() if k in TraderState.model_fields})


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _z(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:+.2f}"


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.{digits}f}%"


def previous_action(obs: dict[str, float]) -> str:
    """The previous action's name from the observation's `prev_<NAME>` one-hot ("none" if absent)."""
    hot = [k[5:] for k, v in obs.items() if k.startswith("prev_") and v >= 0.5]
    return hot[0] if hot else "none"


def position_word(obs: dict[str, float], wallet_in_eth: float | None = None) -> str:
    """The policy's position feature in words; with a live wallet's real ETH share, both when they differ.

    The policy sees only all in, all out (or short); a wallet 45% in ETH is "flat" to it. Saying "flat (all
    USDC)" beside "I hold 9.5 ETH" would contradict the question, so a mixed wallet is named as it is and as
    the policy reads it. Rollouts (the training data) carry no `wallet_in_eth`: their text is unchanged."""
    pos = obs.get("position", 0.0)
    seen = "holding ETH" if pos >= 0.5 else "short ETH" if pos <= -0.5 else "flat"
    exact = {"holding ETH": 1.0, "short ETH": -1.0, "flat": 0.0}[seen]
    if wallet_in_eth is None or abs(wallet_in_eth - exact) < 0.005:
        return "flat (all USDC)" if seen == "flat" else seen
    return f"{100 * wallet_in_eth:.0f}% in ETH (the policy, all in or all out, reads it as {seen})"


def policy_view(state: TraderState | dict[str, Any]) -> str:
    """The policy's observation in words, compactly; empty when the state carries no observation."""
    from prompts import render_prompt

    st = _state(state)
    obs, raw = st.observation, st.features
    if not obs:
        return ""
    pnl = math.expm1(obs.get("unrealised_pnl", 0.0))  # the env observes log(equity / entry equity)
    return render_prompt(
        "policy_view",
        returns=" ".join(_z(obs[k]) for k in RETURN_KEYS if k in obs),
        volatility=_pct(raw.get("realised_vol", st.volatility)).lstrip("+"),
        volatility_z=_z(obs.get("realised_vol")),
        range=_pct(raw.get("hl_range")).lstrip("+"), range_z=_z(obs.get("hl_range")),
        volume_z=_z(obs.get("volume_z")),
        ema_fast=_pct(raw.get("ema_fast_dist")), ema_slow=_pct(raw.get("ema_slow_dist")),
        position=position_word(obs, st.wallet_in_eth), pnl=_pct(pnl),
        bars=int(round(100 * obs.get("time_in_trade", 0.0))),  # the env observes bars / 100
        drawdown=_pct(obs.get("drawdown", 0.0)).lstrip("+"), previous=previous_action(obs),
    ).strip()


def question(state: TraderState | dict[str, Any]) -> str:
    """What the policy saw (when known), then the seed's question with the state's true numbers."""
    from prompts import render_prompt

    st = _state(state)
    seed = render_prompt(
        "trader_question",
        price=_money(st.price),
        volume="n/a" if st.volume is None else f"{float(st.volume):,.1f}",
        volatility=f"{100 * st.volatility:.2f}%",
        change=f"{100 * st.price_change:+.2f}%",
        eth=f"{st.eth:.4f}",
        usdc=_money(st.usdc),
    ).strip()
    view = policy_view(st)
    return f"{view}\n{seed}" if view else seed


def _level(z: float | None) -> str:
    if z is None or not math.isfinite(z):
        return "unknown"
    return "high" if z >= 1.0 else "low" if z <= -0.5 else "normal"


def rationale(state: TraderState | dict[str, Any]) -> str:
    """A short explanation that uses only numbers the question shows: wallet, volatility, trend, last bars."""
    st = _state(state)
    obs, raw = st.observation, st.features
    if not obs:  # the seed's question alone: trend, volatility and holdings are all it shows
        value = st.eth * st.price + st.usdc
        in_eth = 0.0 if value <= 0 else st.eth * st.price / value
        trend = "up" if st.price_change > 0.005 else "down" if st.price_change < -0.005 else "flat"
        return (f"Trend {trend} ({_pct(st.price_change)} over 24h), volatility {100 * st.volatility:.2f}%/bar, "
                f"{100 * in_eth:.0f}% in ETH.")
    where = position_word(obs, st.wallet_in_eth)
    if obs.get("position", 0.0) != 0.0:
        where += f" for {int(round(100 * obs.get('time_in_trade', 0.0)))} bars at {_pct(math.expm1(obs.get('unrealised_pnl', 0.0)))}"
    slow = raw.get("ema_slow_dist")
    trend = "n/a" if slow is None else f"{abs(100 * slow):.2f}% {'above' if slow >= 0 else 'below'} the slow EMA"
    return (f"{where[0].upper()}{where[1:]}. Volatility {_level(obs.get('realised_vol'))} "
            f"(z {_z(obs.get('realised_vol'))}), range z {_z(obs.get('hl_range'))}; price {trend}; "
            f"last bars {_z(obs.get('ret_0'))}, {_z(obs.get('ret_1'))}.")


def response(state: dict[str, Any]) -> str:
    """Rationale + the policy's real action as the last line (no Q-values: the prompt cannot show them)."""
    action = str(state["action"]).upper()
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {state['action']!r}")
    return f"{rationale(state)}\nRECOMMENDATION: {action}"


def parse_action(text: str | None) -> str | None:
    """The last `RECOMMENDATION: X` in a reply, or None when there is none (a parse failure, never a guess)."""
    if not text:
        return None
    found = _RECO.findall(text)
    return found[-1].upper() if found else None


def chat_messages(prompt: str, answer: str | None = None) -> list[dict[str, str]]:
    """mlx-lm chat format; without `answer` it is the inference request."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def read_jsonl(path) -> list[dict[str, Any]]:
    """Records of a JSONL file; a bad line is a one-line DataError naming the line."""
    import json
    from pathlib import Path

    from trader_core.errors import DataError

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; run the stage that produces it first")
    if not path.is_file():
        raise DataError(f"{path} is not a file; pass a JSONL file (one JSON record per line)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text JSONL file (it holds binary data); pass a JSONL file") from None
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc})") from None
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {i} is not JSON ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}: line {i} is not a JSON object")
        out.append(rec)
    return out


def write_jsonl(path, records: Iterable[dict[str, Any]]) -> int:
    import json
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
            n += 1
    return n
