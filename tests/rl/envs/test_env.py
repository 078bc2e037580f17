import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rl.envs import costs
from rl.envs.trading_env import EnvConfig, TradingEnv
from rl.envs.features import FeatureSpec, build_features
from rl.envs.rewards import REWARDS
from rl.envs.vec_env import BatchedTradingEnv
from tests.rl.conftest import make_env, synthetic_candles

ACTION_SETS = [dict(action_set="spot3"), dict(action_set="target"), dict(action_set="target", allow_short=True),
               dict(action_set="5action", allow_short=True)]


@pytest.mark.parametrize("cfg", ACTION_SETS + [dict(action_set="size5")])
def test_env_passes_gymnasium_and_sb3_checkers(eth_features, cfg):
    from stable_baselines3.common.env_checker import check_env as sb3_check

    check_env(make_env(eth_features, **cfg), skip_render_check=True)
    sb3_check(make_env(eth_features, **cfg), warn=False)


def test_registered_with_gymnasium():
    env = gym.make("trader/EthUsdc-v0")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def _random_rollout(env, seed, n=400):
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    out = [(obs, 0.0, info["equity"])]
    for _ in range(n):
        obs, r, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
        out.append((obs, r, info))
        if term or trunc:
            break
    return out


@pytest.mark.parametrize("cfg", ACTION_SETS + [dict(action_set="size5")])
def test_equity_is_cash_plus_position_value_every_step(eth_features, cfg):
    env = make_env(eth_features, gas_usd=2.0, **cfg)
    for _, _, info in _random_rollout(env, 1)[1:]:
        assert info["equity"] == pytest.approx(info["cash"] + info["units"] * info["price"], rel=1e-12)
        assert (info["units"] > 0) == (info["position"] == 1) and (info["units"] < 0) == (info["position"] == -1)


def test_log_return_rewards_sum_to_log_final_equity(eth_features):
    env = make_env(eth_features, episode_length=300)
    steps = _random_rollout(env, 2, 300)
    total = sum(r for _, r, _ in steps[1:])
    assert total == pytest.approx(math.log(steps[-1][2]["equity"] / env.cfg.initial_cash), abs=1e-9)


def test_seeded_rollout_reproduces_exactly(eth_features):
    a = _random_rollout(make_env(eth_features), 7)
    b = _random_rollout(make_env(eth_features), 7)
    assert len(a) == len(b)
    for (oa, ra, _), (ob, rb, _) in zip(a, b):
        assert np.array_equal(oa, ob) and ra == rb


def test_future_data_changes_nothing_up_to_t(eth_candles):
    """Perturb every price after bar t: observations and rewards up to t must be identical."""
    spec = FeatureSpec()
    base = build_features(eth_candles, spec, fit_range=(0, 3000))
    t_cut = 1500
    c = eth_candles
    scale = np.where(np.arange(len(c)) > t_cut, 1.37, 1.0)
    changed = type(c)(c.timestamps, c.open * scale, c.high * scale, c.low * scale, c.close * scale, None, c.name,
                      c.interval_s)
    other = build_features(changed, spec, scaler=base.scaler)
    assert np.array_equal(base.scaled[: t_cut + 1], other.scaled[: t_cut + 1])
    cfg = EnvConfig(episode_length=500)
    e1, e2 = TradingEnv(base, cfg, 0, 3000), TradingEnv(other, cfg, 0, 3000)
    o1, _ = e1.reset(options={"start": 1000})
    o2, _ = e2.reset(options={"start": 1000})
    rng = np.random.default_rng(0)
    # a step decided at close[t] fills at open[t+1] and is rewarded at close[t+1]: compare through t_cut
    for t in range(1000, t_cut):
        assert np.array_equal(o1, o2), f"observation differs at bar {t}"
        a = int(rng.integers(3))
        o1, r1, *_ = e1.step(a)
        o2, r2, *_ = e2.step(a)
        assert r1 == r2, f"reward differs at bar {t}"


def test_terminated_on_equity_floor_and_truncated_at_window_end():
    noise = 100.0 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 200)))
    crash = synthetic_candles(np.r_[noise, noise[-1] * 0.97 ** np.arange(1, 101)])
    feats = build_features(crash, FeatureSpec(window=4, vol_window=8, ema_fast=3, ema_slow=6))
    env = TradingEnv(feats, EnvConfig(episode_length=250, equity_floor=0.5))
    env.reset(options={"start": 199})
    term = trunc = False
    env.step(1)  # BUY into the crash
    while not (term or trunc):
        _, _, term, trunc, info = env.step(0)
    assert term and not trunc and info["equity"] < 5000
    env.reset(options={"start": 150, "length": 10})
    for i in range(10):
        _, _, term, trunc, _ = env.step(0)
        assert term is False and trunc is (i == 9)


def test_costs_round_trip_and_constant_product():
    eth, fee, impact = costs.buy_eth(10_000.0, 2000.0, 1_000_000.0, 0.003)
    x, y = 1_000_000.0 / 2000.0, 1_000_000.0
    assert (x - eth) * (y + 10_000 * 0.997) == pytest.approx(x * y, rel=1e-12)  # x*y=k on the fee-less input
    assert fee == pytest.approx(30.0) and impact > 0
    usdc, _, _ = costs.sell_eth(eth, 2000.0, 1_000_000.0, 0.003)
    assert usdc < 10_000 * 0.997 * 0.997
    assert costs.buy_exact_eth(eth, 2000.0, 1_000_000.0, 0.003)[0] == pytest.approx(10_000.0, rel=1e-9)
    # deeper pool, less impact
    assert costs.price_impact_bps(10_000, 1e8) < costs.price_impact_bps(10_000, 1e6)


def test_buy_then_sell_at_flat_price_loses_exactly_fees_impact_and_gas():
    prices = 2000.0 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, 300)))
    prices[99:104] = 2000.0  # the trade happens at an unchanged price: opens and closes all 2000
    flat = synthetic_candles(prices)
    feats = build_features(flat, FeatureSpec(window=4, vol_window=8, ema_fast=3, ema_slow=6))
    env = TradingEnv(feats, EnvConfig(gas_usd=3.0, pool_depth_usd=1e6))
    env.reset(options={"start": 100, "length": 50})
    env.step(1)
    _, _, _, _, info = env.step(2)
    expected = 10_000.0 - env.fees_paid - env.impact_paid - env.gas_paid
    assert info["equity"] == pytest.approx(expected, rel=1e-12)
    assert env.gas_paid == 6.0 and env.n_trades == 2


def test_five_action_masks_follow_position(eth_features):
    env = make_env(eth_features, action_set="5action", allow_short=True)
    env.reset(seed=0)
    assert env.action_masks().tolist() == [True, True, False, True, False]
    env.step(1)
    assert env.action_masks().tolist() == [True, False, True, False, False]
    env.step(2)
    env.step(3)
    assert env.action_masks().tolist() == [True, False, False, False, True]


@pytest.mark.parametrize("name", list(REWARDS))
def test_reward_presets_report_their_components(eth_features, name):
    env = make_env(eth_features, reward=name)
    for _, r, info in _random_rollout(env, 3, 200)[1:]:
        comps = info["reward_components"]
        assert comps and all(math.isfinite(v) for v in comps.values())
        assert r == pytest.approx(sum(comps.values()))


def test_plain_function_reward_is_accepted(eth_features):
    feats, split = eth_features
    env = TradingEnv(feats, EnvConfig(), *split.train, reward=lambda rec: {"equity_delta": rec.equity - rec.equity_prev})
    _, r, _, _, info = env.step(1) if env.reset(seed=0) else None
    assert r == pytest.approx(info["equity"] - 10_000.0)


RECIPE_OPTIONS = [dict(position_size=0.5), dict(vol_target=0.4, action_set="target", allow_short=True),
                  dict(min_hold_bars=6), dict(cost_penalty=2.0), dict(reward="drawdown_penalty", drawdown_penalty=5.0)]


@pytest.mark.parametrize("cfg", ACTION_SETS + RECIPE_OPTIONS)
def test_batched_env_matches_single_env(eth_features, cfg):
    feats, split = eth_features
    config = EnvConfig(gas_usd=1.5, **cfg)
    single = TradingEnv(feats, config, *split.train)
    batched = BatchedTradingEnv(feats, config, 1, *split.train, seed=0)
    obs, _ = single.reset(seed=11)
    bobs = batched.reset(np.array([single.t]))
    rng = np.random.default_rng(5)
    for _ in range(150):
        assert np.allclose(obs, bobs[0], atol=1e-5)
        a = int(rng.integers(single.action_space.n))
        obs, r, term, trunc, info = single.step(a)
        bobs, br, bterm, btrunc, extra = batched.step(np.array([a]))
        assert br[0] == pytest.approx(r, abs=1e-6)
        assert extra["equity"][0] == pytest.approx(info["equity"], rel=1e-9)
        if term or trunc:
            assert bterm[0] == term and btrunc[0] == trunc
            break


def test_sb3_vec_env_adapter_reports_terminal_observations(eth_features):
    from rl.envs.vec_env import make_sb3_vec_env

    feats, split = eth_features
    venv = make_sb3_vec_env(BatchedTradingEnv(feats, EnvConfig(episode_length=5), 4, *split.train, seed=0))
    obs = venv.reset()
    assert obs.shape == (4, venv.observation_space.shape[0])
    for _ in range(5):
        obs, rewards, dones, infos = venv.step(np.zeros(4, dtype=int))
    assert dones.all()
    assert all("terminal_observation" in i and i["TimeLimit.truncated"] for i in infos)


@pytest.mark.parametrize("cfg, action, position, expected", [
    (dict(action_set="spot3"), 1, 0, "BUY"), (dict(action_set="spot3"), 1, 1, "HOLD"),
    (dict(action_set="spot3"), 2, 0, "HOLD"), (dict(action_set="spot3"), 2, 1, "SELL"),
    (dict(action_set="target"), 1, 0, "BUY"), (dict(action_set="target"), 0, 1, "SELL"),
    (dict(action_set="target", allow_short=True), 0, 0, "SELL"), (dict(action_set="target", allow_short=True), 2, -1, "BUY"),
    (dict(action_set="5action", allow_short=True), 4, -1, "BUY"), (dict(action_set="5action", allow_short=True), 1, 1, "HOLD"),
])
def test_trade_action_follows_what_the_env_executes(cfg, action, position, expected):
    from rl.envs.trading_env import target_table
    from rl.policy import to_trade_action

    assert to_trade_action(target_table(EnvConfig(**cfg)), action, position) == expected


def test_sizing_puts_a_fraction_of_cash_to_work(eth_features):
    half = make_env(eth_features, position_size=0.5)
    half.reset(seed=0)
    _, _, _, _, info = half.step(1)
    assert info["position"] == 1 and info["cash"] == pytest.approx(5_000.0)
    scaled = make_env(eth_features, vol_target=1e-6)  # a tiny target: almost nothing goes in
    scaled.reset(seed=0)
    _, _, _, _, info = scaled.step(1)
    assert info["position"] == 1 and info["cash"] > 9_999.0


def test_minimum_holding_time_ignores_an_early_exit(eth_features):
    env = make_env(eth_features, min_hold_bars=3)
    env.reset(seed=0)
    env.step(1)  # enter; filled at the next bar
    _, _, _, _, info = env.step(2)  # one bar held: the exit is not executed
    assert info["position"] == 1 and not info["traded"]
    env.step(0)
    _, _, _, _, info = env.step(2)  # three bars held: now it is
    assert info["position"] == 0 and info["traded"]


def test_cost_penalty_is_its_own_reward_component(eth_features):
    env = make_env(eth_features, cost_penalty=2.0)
    env.reset(seed=0)
    _, r, _, _, info = env.step(1)
    comps = info["reward_components"]
    costs_usd = info["fee_usd"] + info["impact_usd"]
    assert comps["cost_penalty"] == pytest.approx(-2.0 * costs_usd / 10_000.0)
    assert r == pytest.approx(comps["log_return"] + comps["cost_penalty"])


def test_baselines_trade_full_size_whatever_the_policy_sizing(eth_features):
    from rl.training.evaluate import compare

    feats, split = eth_features
    half, _ = compare(feats, EnvConfig(position_size=0.5, min_hold_bars=24), *split.val, None)
    full, _ = compare(feats, EnvConfig(), *split.val, None)
    assert half["buy_and_hold"]["total_return"] == full["buy_and_hold"]["total_return"]
    assert half["sma"]["sharpe"] == full["sma"]["sharpe"]
