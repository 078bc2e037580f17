import numpy as np
import pytest

from rl.envs.data import load_candles, split_by_dates
from rl.envs.trading_env import EnvConfig, TradingEnv
from rl.envs.features import FeatureSpec, build_features
from trader_core.market_data import Candles


@pytest.fixture(autouse=True)
def _trader_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADER_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def eth_candles():
    return load_candles("chainlink-eth-1h")


@pytest.fixture(scope="session")
def eth_features(eth_candles):
    spec = FeatureSpec()
    split = split_by_dates(eth_candles, gap=spec.lookback)
    return build_features(eth_candles, spec, fit_range=split.train), split


def make_env(eth_features, **cfg) -> TradingEnv:
    feats, split = eth_features
    return TradingEnv(feats, EnvConfig(**cfg), *split.train)


def synthetic_candles(close: np.ndarray, interval_s: int = 3600, volume: bool = False) -> Candles:
    close = np.asarray(close, dtype=float)
    open_ = np.r_[close[0], close[:-1]]
    ts = 1_700_000_000 + interval_s * np.arange(len(close))
    vol = np.full(len(close), 10.0) if volume else None
    return Candles(ts.astype(np.int64), open_, np.maximum(open_, close) * 1.001, np.minimum(open_, close) * 0.999,
                   close, vol, "synthetic", interval_s)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A real (short) DQN training run on the bundled ETH data, shared by the policy tests."""
    from rl.training.config import TrainConfig
    from rl.training.train import train

    out = tmp_path_factory.mktemp("run")
    train(TrainConfig(timesteps=3000, learning_starts=500, eval_freq=1000, n_envs=4, seed=0), out, progress=False)
    return out


@pytest.fixture(scope="session")
def ensemble_run(tmp_path_factory):
    """Two seeds of one short recipe in OUT/seed_<s>: what `trader rl train --seeds 0,1` writes."""
    from rl.training.config import TrainConfig
    from rl.training.train import train

    out = tmp_path_factory.mktemp("ens")
    for seed in (0, 1):
        cfg = TrainConfig(timesteps=1200, learning_starts=300, eval_freq=600, n_envs=4, seed=seed, checkpoint="last")
        train(cfg, out / f"seed_{seed}", progress=False)
    return out


def write_candles_csv(path, candles, volume=None) -> None:
    """A candle CSV as a user would bring it (ISO timestamps; optional volume column)."""
    import pandas as pd

    frame = pd.DataFrame({"timestamp": pd.to_datetime(candles.timestamps, unit="s", utc=True),
                          "open": candles.open, "high": candles.high, "low": candles.low, "close": candles.close})
    if volume is not None:
        frame["volume"] = volume
    frame.to_csv(path, index=False)
