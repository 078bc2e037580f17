"""Reward presets. A reward is a callable on a `StepRecord` returning a dict of named components;
the env's reward is their sum and every component is reported in `info["reward_components"]`,
so reward hacking (e.g. farming an entry bonus) shows up in logs.

Presets: `log_return` (default; sums to log(final/initial equity)), `diff_sharpe` (Moody & Saffell's
differential Sharpe ratio), `drawdown_penalty` (log return minus growth in drawdown), `freqai`
(FreqAI's example shaping, without its RSI branch whose factor was overwritten anyway).
"""

from __future__ import annotations

import math
from typing import Callable, Protocol


class StepRecord:
    """What happened in one env step; one instance is reused per env to keep `step` allocation-free."""

    __slots__ = ("equity_prev", "equity", "drawdown_prev", "drawdown", "position_prev", "position",
                 "action_valid", "entered", "exited", "trade_return", "time_in_trade", "costs_usd")

    def __init__(self) -> None:
        self.equity_prev = self.equity = 1.0
        self.drawdown_prev = self.drawdown = 0.0
        self.position_prev = self.position = 0
        self.action_valid = True
        self.entered = self.exited = False
        self.trade_return = 0.0  # realised return of a trade closed this step (net of costs)
        self.time_in_trade = 0
        self.costs_usd = 0.0


class Reward(Protocol):
    def reset(self) -> None: ...

    def __call__(self, rec: StepRecord) -> dict[str, float]: ...


class LogReturn:
    """Per-step log equity return; the episode sum equals log(final / initial equity) exactly."""

    def reset(self) -> None:
        pass

    def __call__(self, rec: StepRecord) -> dict[str, float]:
        return {"log_return": math.log(rec.equity / rec.equity_prev)}


class DifferentialSharpe:
    """Moody & Saffell (2001): the first-order change of an EMA Sharpe ratio caused by this step's return."""

    def __init__(self, eta: float = 0.01, scale: float = 1.0) -> None:
        self.eta, self.scale = eta, scale
        self.reset()

    def reset(self) -> None:
        self.a = 0.0  # EMA of returns
        self.b = 0.0  # EMA of squared returns

    def __call__(self, rec: StepRecord) -> dict[str, float]:
        r = rec.equity / rec.equity_prev - 1.0
        da, db = r - self.a, r * r - self.b
        var = self.b - self.a * self.a
        d = (self.b * da - 0.5 * self.a * db) / var**1.5 if var > 1e-12 else 0.0
        self.a += self.eta * da
        self.b += self.eta * db
        return {"diff_sharpe": self.scale * max(-10.0, min(10.0, d))}


class DrawdownPenalty:
    """Log return minus `penalty` x the increase in drawdown from the equity peak."""

    def __init__(self, penalty: float = 2.0) -> None:
        self.penalty = penalty

    def reset(self) -> None:
        pass

    def __call__(self, rec: StepRecord) -> dict[str, float]:
        return {"log_return": math.log(rec.equity / rec.equity_prev),
                "drawdown_penalty": -self.penalty * max(0.0, rec.drawdown - rec.drawdown_prev)}


class FreqAIShaped:
    """FreqAI's example reward, scaled by `scale`: -2 invalid, +entry bonus, -1 idle, exit pays pnl x factor."""

    def __init__(self, scale: float = 0.01, entry_bonus: float = 25.0, max_trade_duration: int = 300,
                 win_factor: float = 2.0, profit_aim: float = 0.025, rr: float = 1.0) -> None:
        self.scale, self.entry_bonus, self.max_dur = scale, entry_bonus, max_trade_duration
        self.win_factor, self.aim = win_factor, profit_aim * rr

    def reset(self) -> None:
        pass

    def __call__(self, rec: StepRecord) -> dict[str, float]:
        s = self.scale
        if not rec.action_valid:
            return {"invalid_action": -2.0 * s}
        if rec.entered:
            return {"entry_bonus": self.entry_bonus * s}
        if rec.exited:
            factor = 100.0 * (1.5 if rec.time_in_trade <= self.max_dur else 0.5)
            if rec.trade_return > self.aim:
                factor *= self.win_factor
            return {"exit_pnl": rec.trade_return * factor * s}
        if rec.position == 0:
            return {"idle_penalty": -1.0 * s}
        return {"holding_penalty": -s * rec.time_in_trade / self.max_dur}


REWARDS: dict[str, Callable[[], Reward]] = {
    "log_return": LogReturn,
    "diff_sharpe": DifferentialSharpe,
    "drawdown_penalty": DrawdownPenalty,
    "freqai": FreqAIShaped,
}


def make_reward(name_or_reward: "str | Reward | Callable[[StepRecord], dict[str, float]]") -> Reward:
    """A preset name, a Reward object, or a plain function of a StepRecord (wrapped, stateless)."""
    if isinstance(name_or_reward, str):
        if name_or_reward not in REWARDS:
            from trader_core.errors import ConfigError

            raise ConfigError(f"unknown reward {name_or_reward!r}; choose one of: {', '.join(REWARDS)}")
        return REWARDS[name_or_reward]()
    if hasattr(name_or_reward, "reset"):
        return name_or_reward  # type: ignore[return-value]
    fn = name_or_reward

    class _Wrapped:
        def reset(self) -> None:
            pass

        def __call__(self, rec: StepRecord) -> dict[str, float]:
            return fn(rec)

    return _Wrapped()
