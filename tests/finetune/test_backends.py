"""Optional real backends: MLX LoRA (where `mlx.core` imports) and Ollama registration (where a server
answers at OLLAMA_HOST). Each test says why it is skipped."""

import importlib
import importlib.util
import json

import pytest

from finetune.llm_backends.runtime import ollama_answers, ollama_host

pytestmark = pytest.mark.slow


def _mlx_works() -> bool:
    if importlib.util.find_spec("mlx") is None or importlib.util.find_spec("mlx_lm") is None:
        return False
    try:
        importlib.import_module("mlx.core")
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _mlx_works(), reason="mlx.core does not import here (pip install 'mlx[cpu]' mlx-lm)")
def test_mlx_backend_trains_from_the_same_yaml(small_model, llama_dir, tmp_path):
    from finetune.convert.export import FuseConfig, GgufConfig, convert_to_gguf, fuse, gguf_metadata
    from finetune.train.lora import LoraConfig, LoraParameters, train_lora
    from tests.finetune.convert.test_qwen_tiny import chat_data

    data = chat_data(tmp_path)
    cfg = LoraConfig(model="smollm2-135m", data=str(data), adapter_path=str(tmp_path / "ad"), iters=4,
                     batch_size=2, learning_rate=1e-3, num_layers=2, steps_per_report=2, steps_per_eval=4,
                     val_batches=1, save_every=0, backend="mlx", max_seq_length=256,
                     lora_parameters=LoraParameters(rank=4, keys=["self_attn.q_proj", "self_attn.v_proj"]))
    res = train_lora(cfg)
    assert res.backend == "mlx" and (tmp_path / "ad" / "adapters.safetensors").exists()
    assert res.val_loss and res.train_loss
    saved = json.loads((tmp_path / "ad" / "adapter_config.json").read_text())
    assert saved["backend"] == "mlx" and saved["lora_parameters"]["rank"] == 4
    fused = fuse(FuseConfig(adapter_path=str(tmp_path / "ad"), save_path=str(tmp_path / "fused")))
    assert json.loads((tmp_path / "fused" / "config.json").read_text())["rope_theta"] > 0
    assert fused.size_mb > 0
    f16 = convert_to_gguf(GgufConfig(model=fused.path, out=str(tmp_path / "gguf")))  # fuse, then llama.cpp
    assert gguf_metadata(f16.path)["architecture"] == "llama"


@pytest.mark.skipif(not ollama_answers(), reason=f"no Ollama server answers at {ollama_host()}")
def test_ollama_registers_the_model(small_model, llama_dir, tmp_path):
    pytest.importorskip("ollama", reason="the ollama client is not installed")
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from finetune.convert.export import GgufConfig, QuantizeConfig, convert_to_gguf, quantize
    from finetune.llm_backends.runtime import chat_fn
    from finetune.llm_backends.ollama_export import OllamaConfig, write_modelfile

    f16 = convert_to_gguf(GgufConfig(model=str(small_model), out=str(tmp_path)))
    q4 = quantize(QuantizeConfig(gguf=f16.path))
    res = write_modelfile(OllamaConfig(gguf=q4.path, name="trader-test-smollm2"))
    assert res.registered, res.message
    reply = chat_fn("ollama:trader-test-smollm2", max_tokens=8)([{"role": "user", "content": "Hi"}])
    assert isinstance(reply, str) and reply
