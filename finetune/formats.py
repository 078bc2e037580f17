"""The text contract between the policy, the training data and the fine-tuned model.

One prompt format (the seed's question, `prompts/trader_question.txt`), one response format (a short
rationale from the state's real numbers, then `RECOMMENDATION: BUY|SELL|HOLD (agreement 0.67)` as the
last line) and one parser. The agent's `ask_trader_model` tool and `trader finetune eval` use the same
`parse_action`, so what is trained is exactly what is read back.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

ACTIONS = ("BUY", "SELL", "HOLD")
SYSTEM_PROMPT = (
    "You are an ETH/USDC trading model distilled from a reinforcement-learning policy. "
    "Give a brief rationale, then a last line: RECOMMENDATION: BUY, SELL or HOLD."
)
_RECO = re.compile(r"RECOMMENDATION[\s*]*[:\-]?[\s*]*(BUY|SELL|HOLD)\b", re.IGNORECASE)


def _money(x: float) -> str:
    return f"{x:,.2f}"


def question(state: dict[str, Any]) -> str:
    """The seed's question filled with the true numbers of one state (price, volume, vol, change, holdings)."""
    from prompts import render_prompt

    volume = state.get("volume")
    return render_prompt(
        "trader_question",
        price=_money(float(state["price"])),
        volume="n/a" if volume is None else f"{float(volume):,.1f}",
        volatility=f"{100 * float(state['volatility']):.2f}%",
        change=f"{100 * float(state['price_change']):+.2f}%",
        eth=f"{float(state['eth']):.4f}",
        usdc=_money(float(state["usdc"])),
    )


def rationale(state: dict[str, Any]) -> str:
    """A short explanation built only from facts of the state: trend, volatility, position, Q margin."""
    change = float(state["price_change"])
    vol = float(state["volatility"])
    price, eth, usdc = float(state["price"]), float(state["eth"]), float(state["usdc"])
    trend = "up" if change > 0.005 else "down" if change < -0.005 else "flat"
    # hourly realised volatility of ETH: ~0.3-0.6% is a calm market, above ~1% a stormy one
    vol_word = "low" if vol < 0.004 else "high" if vol > 0.01 else "moderate"
    value = eth * price + usdc
    in_eth = 0.0 if value <= 0 else eth * price / value
    q = sorted((float(v) for v in state.get("q_values") or []), reverse=True)
    margin = q[0] - q[1] if len(q) >= 2 else 0.0
    return (f"Trend: {trend} ({100 * change:+.2f}% over 24h). Volatility: {vol_word} ({100 * vol:.2f}%/h). "
            f"Position: {100 * in_eth:.0f}% in ETH. Q-value margin over the next action: {margin:.3f}.")


def response(state: dict[str, Any]) -> str:
    """Rationale + the policy's real action and its members' agreement as the last line."""
    action = str(state["action"]).upper()
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {state['action']!r}")
    return f"{rationale(state)}\nRECOMMENDATION: {action} (agreement {float(state['agreement']):.2f})"


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
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {i} is not JSON ({exc.msg})") from None
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
