"""`BatchedTradingEnv`: N trading envs stepped together with numpy index arithmetic, in one process,
and `SB3VecEnv`, the adapter that lets stable-baselines3 train on it.

It runs the same ledger as `TradingEnv` (the same `rl.envs.costs` formulas, applied with masks instead of
branches) and a test checks both produce identical equity paths for the same actions. Rewards: the
vectorisable presets (`log_return`, `drawdown_penalty`); other presets train on single envs.
"""

from __future__ import annotations

import numpy as np

from rl.envs import costs
from rl.envs.trading_env import ACCOUNT_FEATURES, KEEP, OBS_BOUND, EnvConfig, TradingEnv, entry_fractions, target_table
from rl.envs.features import MarketFeatures
from trader_core.errors import ConfigError

VECTOR_REWARDS = ("log_return", "drawdown_penalty")
VECTOR_ACTION_SETS = ("spot3", "target", "5action")  # size5 (partial resizes) trains on single envs


class BatchedTradingEnv:
    """`n_envs` independent episodes over the same features; done envs reset automatically."""

    render_mode = None

    def __init__(self, features: MarketFeatures, config: EnvConfig | None = None, n_envs: int = 8,
                 start: int = 0, stop: int | None = None, seed: int | None = None) -> None:
        self.cfg = config or EnvConfig()
        if self.cfg.reward not in VECTOR_REWARDS:
            raise ConfigError(f"the batched env supports rewards {', '.join(VECTOR_REWARDS)}, not "
                              f"{self.cfg.reward!r}; use single envs (n_envs=1) for that reward")
        if self.cfg.action_set not in VECTOR_ACTION_SETS:
            raise ConfigError(f"the batched env supports action sets {', '.join(VECTOR_ACTION_SETS)}, not "
                              f"{self.cfg.action_set!r}; use single envs for that action set")
        # The single env owns the episode-start rules; reuse them instead of re-deriving.
        proto = TradingEnv(features, self.cfg, start, stop)
        self.observation_space, self.action_space = proto.observation_space, proto.action_space
        self._starts, self.stop = proto.episode_starts, proto.stop
        self.n_envs, self.n_actions, self._nf = n_envs, proto.n_actions, features.n_features
        self._targets = np.array(target_table(self.cfg), dtype=np.int64)
        c = features.candles
        self._open, self._close, self._scaled = c.open, c.close, features.scaled
        self._seg_end = features.segment_end
        self._frac = entry_fractions(features, self.cfg)
        self.rng = np.random.default_rng(seed)
        n = n_envs
        self.t = np.zeros(n, np.int64)
        self.t_end = np.zeros(n, np.int64)
        self.cash, self.units, self.equity = np.zeros(n), np.zeros(n), np.zeros(n)
        self.peak, self.entry_equity = np.zeros(n), np.zeros(n)
        self.entry_t = np.zeros(n, np.int64)
        self.position = np.zeros(n, np.int64)
        self.prev_action = np.zeros(n, np.int64)
        self._all = np.arange(n)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def _reset_idx(self, idx: np.ndarray, starts: np.ndarray | None = None) -> None:
        if starts is None:
            starts = self._starts[self.rng.integers(len(self._starts), size=len(idx))]
        seg_stop = np.minimum(self._seg_end[starts], self.stop)
        self.t[idx] = starts
        self.t_end[idx] = np.minimum(seg_stop - 1, starts + self.cfg.episode_length)
        init = self.cfg.initial_cash
        self.cash[idx], self.units[idx], self.position[idx] = init, 0.0, 0
        self.equity[idx] = self.peak[idx] = self.entry_equity[idx] = init
        self.entry_t[idx] = starts
        self.prev_action[idx] = 0

    def reset(self, starts: np.ndarray | None = None) -> np.ndarray:
        self._reset_idx(self._all, starts)
        return self._observations()

    def _liquidation(self, price: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        long_amt = np.where(self.position == 1, self.units, 0.0)
        short_amt = np.where(self.position == -1, -self.units, 0.0)
        out = costs.sell_eth(long_amt, price, cfg.pool_depth_usd, cfg.fee)[0]
        back = costs.buy_exact_eth(short_amt, price, cfg.pool_depth_usd, cfg.fee)[0]
        return self.cash + out - back - np.where(self.position != 0, cfg.gas_usd, 0.0)

    def _observations(self) -> np.ndarray:
        nf, t = self._nf, self.t
        obs = np.zeros((self.n_envs, nf + len(ACCOUNT_FEATURES) + self.n_actions), np.float32)
        obs[:, :nf] = self._scaled[t]
        in_pos = self.position != 0
        obs[:, nf] = self.position
        liq = np.maximum(self._liquidation(self._close[t]), 1e-9)
        obs[:, nf + 1] = np.where(in_pos, np.clip(np.log(liq / self.entry_equity), -OBS_BOUND, OBS_BOUND), 0.0)
        obs[:, nf + 2] = np.where(in_pos, np.minimum((t - self.entry_t) / 100.0, 5.0), 0.0)
        obs[:, nf + 3] = 1.0 - self.equity / self.peak
        obs[self._all, nf + 4 + self.prev_action] = 1.0
        return obs

    def step(self, actions: np.ndarray):
        """Returns obs, rewards, terminated, truncated, infos-light dict (arrays) and terminal observations."""
        cfg = self.cfg
        a = np.asarray(actions, dtype=np.int64)
        pos, t = self.position, self.t
        eq_prev, dd_prev = self.equity.copy(), 1.0 - self.equity / self.peak
        target = self._targets[a, pos + 1]
        trade = (target != KEEP) & (target != pos)
        if cfg.min_hold_bars:
            trade &= ~((pos != 0) & (t + 1 - self.entry_t < cfg.min_hold_bars))
        frac = self._frac[t]
        fill = self._open[t + 1] if cfg.fill == "next_open" else self._close[t]
        # close longs, close shorts (zero amounts cost nothing), then open
        usdc, fee1, imp1 = costs.sell_eth(np.where(trade & (pos == 1), self.units, 0.0), fill,
                                          cfg.pool_depth_usd, cfg.fee)
        back, fee2, imp2 = costs.buy_exact_eth(np.where(trade & (pos == -1), -self.units, 0.0), fill,
                                               cfg.pool_depth_usd, cfg.fee)
        cash = self.cash + usdc - back
        units = np.where(trade & (pos != 0), 0.0, self.units)
        spend = np.where(trade & (target == 1) & (cash > 0), cash * frac, 0.0)
        eth, fee3, imp3 = costs.buy_eth(spend, fill, cfg.pool_depth_usd, cfg.fee)
        short_eth = np.where(trade & (target == -1) & (cash > 0), cash * frac / fill, 0.0)
        usdc_short, fee4, imp4 = costs.sell_eth(short_eth, fill, cfg.pool_depth_usd, cfg.fee)
        cash = cash - spend + usdc_short - np.where(trade, cfg.gas_usd, 0.0)
        units = units + eth - short_eth
        new_pos = np.where(trade, target, pos)
        opened = trade & (new_pos != 0)
        self.entry_equity = np.where(opened, cash + units * fill, self.entry_equity)
        self.entry_t = np.where(opened, t + 1, self.entry_t)
        self.cash, self.units, self.position, self.prev_action = cash, units, new_pos, a
        self.t = t = t + 1
        equity = cash + units * self._close[t]
        self.equity = equity
        self.peak = np.maximum(self.peak, equity)
        rewards = np.log(np.maximum(equity, 1e-9) / eq_prev)
        if cfg.reward == "drawdown_penalty":
            rewards -= cfg.drawdown_penalty * np.maximum(0.0, (1.0 - equity / self.peak) - dd_prev)
        terminated = equity < cfg.equity_floor * cfg.initial_cash
        truncated = ~terminated & (t >= self.t_end)
        costs_usd = fee1 + fee2 + fee3 + fee4 + imp1 + imp2 + imp3 + imp4
        if cfg.cost_penalty:
            rewards -= cfg.cost_penalty * (costs_usd + np.where(trade, cfg.gas_usd, 0.0)) / eq_prev
        obs = self._observations()
        done = terminated | truncated
        terminal_obs = None
        if done.any():
            idx = np.flatnonzero(done)
            terminal_obs = obs[idx].copy()
            self._reset_idx(idx)
            obs[idx] = self._observations()[idx]
        return obs, rewards.astype(np.float32), terminated, truncated, {
            "equity": equity, "traded": trade, "costs_usd": costs_usd, "terminal_obs": terminal_obs,
            "done_idx": np.flatnonzero(done)}


def make_sb3_vec_env(batched: BatchedTradingEnv):
    """Wrap a `BatchedTradingEnv` as a stable-baselines3 `VecEnv` (imports SB3 lazily)."""
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv

    class SB3VecEnv(VecEnv):
        def __init__(self, env: BatchedTradingEnv) -> None:
            self.env = env
            super().__init__(env.n_envs, env.observation_space, env.action_space)
            self._actions = None

        def reset(self):
            seed = self._seeds[0] if getattr(self, "_seeds", None) and self._seeds[0] is not None else None
            if seed is not None:
                self.env.seed(seed)
            self._reset_seeds()
            return self.env.reset()

        def step_async(self, actions) -> None:
            self._actions = actions

        def step_wait(self):
            obs, rewards, terminated, truncated, extra = self.env.step(self._actions)
            dones = terminated | truncated
            infos = [{} for _ in range(self.num_envs)]
            for k, i in enumerate(extra["done_idx"]):
                infos[i] = {"terminal_observation": extra["terminal_obs"][k],
                            "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                            "episode_equity": float(extra["equity"][i])}
            return obs, rewards, dones, infos

        def close(self) -> None:
            pass

        def get_attr(self, attr_name, indices=None):
            return [getattr(self.env, attr_name)] * len(self._get_indices(indices))

        def set_attr(self, attr_name, value, indices=None) -> None:
            setattr(self.env, attr_name, value)

        def env_method(self, method_name, *args, indices=None, **kwargs):
            return [getattr(self.env, method_name)(*args, **kwargs)] * len(self._get_indices(indices))

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * len(self._get_indices(indices))

    return SB3VecEnv(batched)
