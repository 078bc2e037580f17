"""`TradingEnv`: a Gymnasium env trading ETH against USDC through a constant-product pool.

Timing: the agent sees features up to close[t], its order fills at open[t+1] (or close[t] with
`fill="close"`), and the step is marked to market at close[t+1]. One ledger (cash, units) drives both the
equity curve and the reward: equity = cash + units * close, always.
Episodes start at a seeded random bar, last `episode_length` bars, never cross a data gap, end `truncated`
when the window runs out and `terminated` when equity falls below `equity_floor` x initial.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pydantic import BaseModel, Field

from rl.envs import costs
from rl.envs.features import MarketFeatures
from rl.envs.rewards import DrawdownPenalty, LogReturn, StepRecord, make_reward

ACCOUNT_FEATURES = ["position", "unrealised_pnl", "time_in_trade", "drawdown"]
ActionSet = Literal["spot3", "target", "5action", "size5"]
ACTION_NAMES: dict[str, list[str]] = {
    "spot3": ["HOLD", "BUY", "SELL"],
    "target": ["FLAT", "LONG"],
    "target_short": ["SHORT", "FLAT", "LONG"],
    "5action": ["NEUTRAL", "ENTER_LONG", "EXIT_LONG", "ENTER_SHORT", "EXIT_SHORT"],
    "size5": ["TO_0", "TO_25", "TO_50", "TO_75", "TO_100"],
}
# size5: the action is the share of equity to hold in ETH (the position size is the decision, not a setting)
SIZE_LEVELS: dict[str, list[float]] = {"size5": [0.0, 0.25, 0.5, 0.75, 1.0]}
KEEP = 99  # "no change" target position
OBS_BOUND = 10.0  # market features are clipped to +-5; account state is clipped to this


class EnvConfig(BaseModel):
    """Everything that defines the market simulation; saved with each run."""

    action_set: ActionSet = Field("spot3", description="spot3 (HOLD/BUY/SELL), target, 5action (FreqAI), or "
                                  "size5 (hold 0/25/50/75/100% of equity in ETH; position_size is ignored)")
    allow_short: bool = Field(False, description="target/5action only: allow short positions")
    fee: float = Field(costs.DEFAULT_FEE, ge=0, lt=0.1, description="Uniswap fee tier as a fraction")
    pool_depth_usd: float = Field(costs.DEFAULT_POOL_DEPTH_USD, gt=0, description="USDC on each pool side")
    gas_usd: float = Field(0.0, ge=0, description="gas cost per trade in USD")
    initial_cash: float = Field(10_000.0, gt=0, description="starting USDC")
    episode_length: int = Field(168, ge=2, description="bars per training episode (168 = one week of 1h bars)")
    equity_floor: float = Field(0.5, ge=0, lt=1, description="terminate when equity < floor x initial")
    fill: Literal["next_open", "close"] = Field("next_open", description="where a decision at close[t] fills")
    reward: str = Field("log_return", description="log_return, diff_sharpe, drawdown_penalty or freqai")
    drawdown_penalty: float = Field(2.0, ge=0, le=100, description="drawdown_penalty reward: weight of the "
                                    "increase in drawdown")
    cost_penalty: float = Field(0.0, ge=0, le=100, description="fee-aware training: subtract this multiple of "
                                "each trade's fee + impact + gas (as a fraction of equity) from the reward, on "
                                "top of the cost already in the equity")
    min_hold_bars: int = Field(0, ge=0, le=10_000, description="bars a position is held before it may be "
                               "closed or flipped (earlier exits are ignored); 0: no minimum")
    position_size: float = Field(1.0, gt=0, le=1, description="fraction of cash a long (or short) puts to work")
    vol_target: float | None = Field(None, gt=0, le=10, description="volatility-scaled sizing: scale each entry "
                                     "by min(1, vol_target / realised annualised volatility); None: off")

    @property
    def action_names(self) -> list[str]:
        if self.action_set == "target":
            return ACTION_NAMES["target_short" if self.allow_short else "target"]
        return ACTION_NAMES[self.action_set]


def target_table(cfg: EnvConfig) -> list[list[int]]:
    """targets[action][position + 1] -> new position (-1, 0, 1) or KEEP when the action is invalid/no-op.

    size5 has no such table (its actions are exposure levels); it reads like `target`: the first action goes
    flat, the last goes fully long."""
    if cfg.action_set in SIZE_LEVELS:
        n = len(SIZE_LEVELS[cfg.action_set])
        return [[0 if p != 0 else KEEP for p in (-1, 0, 1)]] + [[KEEP] * 3] * (n - 2) + \
            [[1 if p != 1 else KEEP for p in (-1, 0, 1)]]
    if cfg.action_set == "spot3":  # HOLD, BUY, SELL; long-only as in the seed tutorial
        return [[KEEP, KEEP, KEEP], [KEEP, 1, KEEP], [KEEP, KEEP, 0]]
    if cfg.action_set == "target":
        levels = [-1, 0, 1] if cfg.allow_short else [0, 1]
        return [[lvl if lvl != p else KEEP for p in (-1, 0, 1)] for lvl in levels]
    # 5action: neutral, enter long, exit long, enter short, exit short; entries only from flat
    short = 1 if cfg.allow_short else 0
    return [[KEEP, KEEP, KEEP], [KEEP, 1, KEEP], [KEEP, KEEP, 0],
            [KEEP, -1 if short else KEEP, KEEP], [0, KEEP, KEEP]]


def entry_fractions(features: MarketFeatures, cfg: EnvConfig) -> np.ndarray:
    """Per bar: the fraction of cash an entry decided at that bar puts to work (sizing rules)."""
    frac = np.full(len(features.candles), cfg.position_size)
    if cfg.vol_target is not None:
        from rl.metrics import periods_per_year

        vol = features.raw[:, features.names.index("realised_vol")] * math.sqrt(
            periods_per_year(features.candles.interval_s))
        scale = np.where(np.isfinite(vol) & (vol > 0), cfg.vol_target / np.where(vol > 0, vol, 1.0), 1.0)
        frac = frac * np.minimum(1.0, scale)
    return frac


def valid_table(cfg: EnvConfig) -> list[list[bool]]:
    """valid[action][position + 1]: HOLD/NEUTRAL is always valid; other no-ops are invalid."""
    table = target_table(cfg)
    return [[a == 0 or t != KEEP for t in row] if cfg.action_set not in ("target", *SIZE_LEVELS) else [True] * 3
            for a, row in enumerate(table)]


class TradingEnv(gym.Env):
    """Single trading env over precomputed `MarketFeatures` within bar range [start, stop)."""

    metadata = {"render_modes": []}

    def __init__(self, features: MarketFeatures, config: EnvConfig | None = None,
                 start: int = 0, stop: int | None = None, random_start: bool = True, reward=None) -> None:
        super().__init__()
        self.cfg = config or EnvConfig()
        self.features = features
        self.start, self.stop = start, len(features.candles) if stop is None else stop
        self.random_start = random_start
        if reward is None and self.cfg.reward == "drawdown_penalty":
            reward = DrawdownPenalty(self.cfg.drawdown_penalty)
        self.reward_fn = make_reward(reward if reward is not None else self.cfg.reward)
        self.n_actions = len(self.cfg.action_names)
        self._targets = target_table(self.cfg)
        self._valid = valid_table(self.cfg)
        c = features.candles
        # Python lists: scalar indexing is several times faster than numpy item access inside step().
        self._open, self._close = c.open.tolist(), c.close.tolist()
        self._scaled = features.scaled
        self._seg_end = features.segment_end.tolist()
        nf = features.n_features
        self._obs_size = nf + len(ACCOUNT_FEATURES) + self.n_actions
        self.observation_space = spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(self._obs_size,), dtype=np.float32)
        self.action_space = spaces.Discrete(self.n_actions)
        self._base = np.zeros((len(c), self._obs_size), dtype=np.float32)
        self._base[:, :nf] = features.scaled
        self._fast_log_reward = type(self.reward_fn) is LogReturn
        # config values read on every step, hoisted out of the pydantic model
        self._fill_next_open = self.cfg.fill == "next_open"
        self._floor = self.cfg.equity_floor * self.cfg.initial_cash
        self._gas = self.cfg.gas_usd
        self._nf = nf
        self._frac = entry_fractions(features, self.cfg).tolist()
        self._levels = SIZE_LEVELS.get(self.cfg.action_set)
        self._min_hold = self.cfg.min_hold_bars
        self._cost_penalty = self.cfg.cost_penalty
        self._rec = StepRecord()
        self.episode_starts = self._episode_starts()
        self.t = self.t_end = self.start
        self._reset_ledger()

    # -- episode bookkeeping -------------------------------------------------------------------------
    def _episode_starts(self) -> np.ndarray:
        """Bars where an episode may start: valid features and at least 2 more bars in the same segment."""
        idx = np.arange(self.start, self.stop)
        ok = self.features.valid[self.start:self.stop] & (np.minimum(self.features.segment_end[idx], self.stop)
                                                           - idx >= 2)
        starts = idx[ok]
        if len(starts) == 0:
            from trader_core.errors import DataError

            raise DataError(f"no bar in [{self.start}, {self.stop}) has enough history to start an episode "
                            f"(feature look-back {self.features.spec.lookback} bars)")
        return starts

    def _reset_ledger(self) -> None:
        self.cash, self.units, self.position = self.cfg.initial_cash, 0.0, 0
        self.level = 0  # size5: index of the exposure level held
        self.equity = self.peak = self.cfg.initial_cash
        self.entry_equity, self.entry_t = self.cfg.initial_cash, self.t
        self.prev_action = 0
        self.fees_paid = self.impact_paid = self.gas_paid = 0.0
        self.n_trades = 0
        self.last_trade_return = 0.0  # net return of the most recently closed trade

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "start" in options:
            t0 = int(options["start"])
        elif self.random_start:
            t0 = int(self.episode_starts[self.np_random.integers(len(self.episode_starts))])
        else:
            t0 = int(self.episode_starts[0])
        seg_stop = min(self._seg_end[t0], self.stop)
        length = options.get("length", self.cfg.episode_length if self.random_start else None)
        self.t = t0
        self.t_end = seg_stop - 1 if length is None else min(seg_stop - 1, t0 + int(length))
        self._reset_ledger()
        if options.get("position"):  # start already holding a position (e.g. a wallet that holds ETH)
            self._hold(int(options["position"]))
        self.reward_fn.reset()
        return self._observation(), {"t": self.t, "equity": self.equity, "price": self._close[self.t]}

    # -- the ledger ----------------------------------------------------------------------------------
    def _trade_to(self, target: int, price: float) -> tuple[float, float]:
        """Move the position to `target` at `price`: close what is open, then open. Returns (fee, impact)."""
        cfg, fee_sum, impact_sum = self.cfg, 0.0, 0.0
        if self.position == 1:
            usdc, fee, impact = costs.sell_eth(self.units, price, cfg.pool_depth_usd, cfg.fee)
            self.cash += usdc
            self.units = 0.0
            fee_sum, impact_sum = fee_sum + fee, impact_sum + impact
        elif self.position == -1:
            usdc, fee, impact = costs.buy_exact_eth(-self.units, price, cfg.pool_depth_usd, cfg.fee)
            self.cash -= usdc
            self.units = 0.0
            fee_sum, impact_sum = fee_sum + fee, impact_sum + impact
        if target == 1 and self.cash > 0:
            spend = self.cash * self._frac[self.t]
            eth, fee, impact = costs.buy_eth(spend, price, cfg.pool_depth_usd, cfg.fee)
            self.units, self.cash = eth, self.cash - spend
            fee_sum, impact_sum = fee_sum + fee, impact_sum + impact
        elif target == -1 and self.cash > 0:
            eth_in = self.cash * self._frac[self.t] / price  # borrow ETH worth that much cash and sell it
            usdc, fee, impact = costs.sell_eth(eth_in, price, cfg.pool_depth_usd, cfg.fee)
            self.cash += usdc
            self.units = -eth_in
            fee_sum, impact_sum = fee_sum + fee, impact_sum + impact
        self.cash -= cfg.gas_usd
        self.position = target
        return fee_sum, impact_sum

    def _liquidation_value(self, price: float) -> float:
        """Equity if the position were closed now at `price`, after fee and price impact."""
        cfg = self.cfg
        if self.position == 1:
            return self.cash + costs.sell_eth(self.units, price, cfg.pool_depth_usd, cfg.fee)[0] - cfg.gas_usd
        if self.position == -1:
            return self.cash - costs.buy_exact_eth(-self.units, price, cfg.pool_depth_usd, cfg.fee)[0] - cfg.gas_usd
        return self.cash

    def _resize(self, a: int, t: int) -> tuple[bool, float, float, float]:
        """size5: trade only the difference to exposure level `a` (a partial buy or sell, not a round trip).
        Returns (traded, fee, impact, return of the trade closed by going to 0%)."""
        if a == self.level or (self.level != 0 and t + 1 - self.entry_t < self._min_hold):
            return False, 0.0, 0.0, 0.0
        cfg = self.cfg
        price = self._open[t + 1] if self._fill_next_open else self._close[t]
        trade_return = 0.0
        if a == 0:
            trade_return = self._liquidation_value(price) / self.entry_equity - 1.0
            self.last_trade_return = trade_return
            usdc, fee, impact = costs.sell_eth(self.units, price, cfg.pool_depth_usd, cfg.fee)
            self.cash, self.units = self.cash + usdc, 0.0
        else:
            want = self._levels[a] * (self.cash + self.units * price) / price
            if want > self.units:
                spend = min(self.cash, (want - self.units) * price)
                eth, fee, impact = costs.buy_eth(spend, price, cfg.pool_depth_usd, cfg.fee)
                self.cash, self.units = self.cash - spend, self.units + eth
            else:
                usdc, fee, impact = costs.sell_eth(self.units - want, price, cfg.pool_depth_usd, cfg.fee)
                self.cash, self.units = self.cash + usdc, want
        self.cash -= self._gas
        if self.level == 0 and a != 0:  # a new trade starts; resizing an open one keeps its entry
            self.entry_equity, self.entry_t = self.cash + self.units * price, t + 1
        elif a != 0:
            self.entry_t = t + 1  # the minimum holding time counts from the latest resize
        self.level, self.position = a, 1 if a else 0
        self.n_trades += 1
        self.fees_paid += fee
        self.impact_paid += impact
        self.gas_paid += self._gas
        return True, fee, impact, trade_return

    # -- the step --------------------------------------------------------------------------------------
    def step(self, action):
        a = int(action)
        t = self.t
        pos_prev, equity_prev, peak_prev = self.position, self.equity, self.peak
        traded, fee, impact, trade_return, time_in_trade = False, 0.0, 0.0, 0.0, t - self.entry_t
        if self._levels is not None:
            valid, target = True, KEEP
            traded, fee, impact, trade_return = self._resize(a, t)
        else:
            target = self._targets[a][pos_prev + 1]
            valid = self._valid[a][pos_prev + 1]
        if pos_prev != 0 and target != KEEP and t + 1 - self.entry_t < self._min_hold:
            target = KEEP  # minimum holding time: an early exit or flip is not executed
        if target != KEEP and target != pos_prev:
            fill_price = self._open[t + 1] if self._fill_next_open else self._close[t]
            if pos_prev != 0:
                # realised return of the closed trade, net of all costs, before re-opening
                trade_return = self._liquidation_value(fill_price) / self.entry_equity - 1.0
                self.last_trade_return = trade_return
            fee, impact = self._trade_to(target, fill_price)
            traded = True
            self.n_trades += 1
            self.fees_paid += fee
            self.impact_paid += impact
            self.gas_paid += self._gas
            if target != 0:
                self.entry_equity, self.entry_t = self.cash + self.units * fill_price, t + 1
        self.t = t = t + 1
        price = self._close[t]
        self.equity = equity = self.cash + self.units * price
        if equity > self.peak:
            self.peak = equity
        self.prev_action = a

        if self._fast_log_reward:  # the default reward needs no step record: skip filling it
            reward = math.log((equity if equity > 1e-9 else 1e-9) / equity_prev)
            components = {"log_return": reward}
        else:
            rec = self._rec
            rec.equity_prev, rec.equity = equity_prev, max(equity, 1e-9)
            rec.drawdown_prev, rec.drawdown = 1.0 - equity_prev / peak_prev, 1.0 - equity / self.peak
            rec.position_prev, rec.position = pos_prev, self.position
            rec.action_valid = valid
            rec.entered = traded and self.position != 0
            rec.exited = traded and pos_prev != 0
            rec.trade_return, rec.time_in_trade = trade_return, time_in_trade
            rec.costs_usd = fee + impact
            components = self.reward_fn(rec)
            reward = float(sum(components.values()))
        if self._cost_penalty and traded:
            components = {**components, "cost_penalty": -self._cost_penalty * (fee + impact + self._gas) / equity_prev}
            reward += components["cost_penalty"]

        terminated = equity < self._floor
        truncated = t >= self.t_end and not terminated
        info = {"t": t, "price": price, "equity": equity, "cash": self.cash, "units": self.units,
                "position": self.position, "traded": traded, "fee_usd": fee, "impact_usd": impact,
                "gas_usd": self._gas if traded else 0.0, "action_valid": valid,
                "exposure": self.units * price / equity if equity > 1e-9 else 0.0,
                "reward_components": components}
        return self._observation(), reward, terminated, truncated, info

    def _observation(self) -> np.ndarray:
        # One row copy from the precomputed [market | zeros] matrix, then only the non-zero account entries.
        t, nf = self.t, self._nf
        obs = self._base[t].copy()
        if self.position != 0:
            liq = self._liquidation_value(self._close[t])
            obs[nf] = self.position if self._levels is None else self._levels[self.level]
            obs[nf + 1] = max(-OBS_BOUND, min(OBS_BOUND, math.log(max(liq, 1e-9) / self.entry_equity)))
            obs[nf + 2] = min((t - self.entry_t) / 100.0, 5.0)
        if self.equity < self.peak:
            obs[nf + 3] = 1.0 - self.equity / self.peak
        obs[nf + 4 + self.prev_action] = 1.0
        return obs

    def observe(self, t: int, position: int = 0) -> np.ndarray:
        """Observation at bar `t` for a fresh account holding `position` (-1, 0, 1; size5: the level index):
        live signals use the same observation code as training and backtests."""
        self.t = self.entry_t = t
        self._reset_ledger()
        if position != 0:
            self._hold(position)
        return self._observation()

    def _hold(self, position: int) -> None:
        """Turn the fresh account into one fully in `position` at the current close, at no cost."""
        if self._levels is not None:  # size5: `position` is the exposure level; it was the last action too
            self.units = self._levels[position] * self.cfg.initial_cash / self._close[self.t]
            self.cash = self.cfg.initial_cash - self.units * self._close[self.t]
            self.level, self.position, self.prev_action = position, 1 if position else 0, position
            return
        self.units = position * self._frac[self.t] * self.cfg.initial_cash / self._close[self.t]
        self.cash = self.cfg.initial_cash - self.units * self._close[self.t]
        self.position = position

    def action_masks(self) -> np.ndarray:
        """Valid actions in the current position (FreqAI / sb3-contrib MaskablePPO convention)."""
        return np.array([row[self.position + 1] for row in self._valid], dtype=bool)

    def account_state(self) -> dict[str, float]:
        obs = self._observation()
        return {name: float(obs[self._nf + i]) for i, name in enumerate(ACCOUNT_FEATURES)}


def register_envs() -> None:
    """Register `trader/EthUsdc-v0` (bundled Chainlink ETH/USD, 1h) with gymnasium; idempotent."""
    if "trader/EthUsdc-v0" not in gym.registry:
        gym.register(id="trader/EthUsdc-v0", entry_point="rl.envs.trading_env:make_default_env")


def make_default_env(data: str = "chainlink-eth-1h", split: str = "train", **config) -> TradingEnv:
    """Env over a bundled dataset's split, scaler fitted on its training split (used by gym.make)."""
    from rl.envs.data import load_candles, split_by_dates
    from rl.envs.features import FeatureSpec, build_features

    candles = load_candles(data)
    spec = FeatureSpec()
    sp = split_by_dates(candles, gap=spec.lookback)
    feats = build_features(candles, spec, fit_range=sp.train)
    return TradingEnv(feats, EnvConfig(**config), *sp.range(split))


register_envs()
