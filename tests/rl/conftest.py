import numpy as np
import pytest

from rl.data import load_candles, split_by_dates
from rl.env import EnvConfig, TradingEnv
from rl.features import FeatureSpec, build_features
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
