"""The whole chain on the real SmolLM2-135M-Instruct: distill (real policy) -> prepare -> LoRA (PEFT, loss
must fall) -> fuse -> GGUF f16 -> q4_k_m -> llama.cpp generation; the fine-tuned format must survive
4-bit quantization, a second `all` run must skip every finished stage, and a changed input (by content, not
path) must redo exactly the stages downstream of it.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

from finetune import formats
from finetune.convert.export import gguf_metadata
from finetune.pipeline import PipelineConfig, run_pipeline, stale_stages
from tests.conftest import HANG_S

pytestmark = [pytest.mark.slow, pytest.mark.llm]
MARKER = "range z"  # only the distilled rationale says this; the base model never does

# Few steps at a high rate: enough for the answer format to take, cheap on 2 CPU cores (12 steps: val loss
# 2.41 -> 0.39, 65 s; 24 steps cost 104 s for no test that needs them).
TEST_LORA = {
    "model": "smollm2-135m", "data": "unused", "fine_tune_type": "lora", "num_layers": 8,
    "lora_parameters": {"rank": 8, "scale": 20.0, "dropout": 0.0, "keys": ["self_attn.q_proj", "self_attn.v_proj"]},
    "iters": 12, "batch_size": 2, "learning_rate": 3.0e-3, "mask_prompt": True, "max_seq_length": 640,
    "steps_per_report": 2, "steps_per_eval": 12, "val_batches": 2, "save_every": 0, "backend": "peft",
}


@pytest.fixture(scope="module")
def chain(small_model, llama_dir, policy_run, tmp_path_factory):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    root = tmp_path_factory.mktemp("chain")
    (root / "lora.yaml").write_text(yaml.safe_dump(TEST_LORA))
    cfg = PipelineConfig(base="smollm2-135m", policy=policy_run, out=str(root / "run"), episodes=100, steps=60,
                         config=str(root / "lora.yaml"), eval_limit=4, heldout_episodes=40, heldout_per_action=4,
                         ladder=["base", "q4_k_m"])
    return cfg, run_pipeline(cfg, report=lambda msg: None)


def test_lora_loss_falls_and_config_is_saved_beside_the_adapter(chain):
    cfg, res = chain
    log = json.loads(open(os.path.join(res.artifacts["adapters"], "train_log.json")).read())
    assert log["backend"] == "peft"
    assert log["val_loss"][-1][1] < log["val_loss"][0][1] - 0.3
    assert log["train_loss"][-1][1] < log["train_loss"][0][1]
    saved = json.loads(open(os.path.join(res.artifacts["adapters"], "adapter_config.json")).read())
    assert saved["lora_parameters"]["rank"] == 8 and saved["iters"] == TEST_LORA["iters"] and saved["model"] == "smollm2-135m"
    fuse_cfg = json.loads(open(os.path.join(res.artifacts["fused"], "fuse_config.json")).read())
    assert fuse_cfg["adapter_path"] == res.artifacts["adapters"] and fuse_cfg["dtype"] == "float16"


def test_gguf_metadata_and_quantization(chain):
    _, res = chain
    f16, q4 = gguf_metadata(res.artifacts["gguf_f16"]), gguf_metadata(res.artifacts["gguf_quant"])
    assert f16["architecture"] == q4["architecture"] == "llama"
    assert f16["tokenizer"] == q4["tokenizer"] == "gpt2" and q4["chat_template"]
    assert (f16["file_type"], q4["file_type"]) == (1, 15)  # MOSTLY_F16 -> MOSTLY_Q4_K_M
    assert os.path.getsize(res.artifacts["gguf_quant"]) < 0.5 * os.path.getsize(res.artifacts["gguf_f16"])
    modelfile = open(res.artifacts["modelfile"]).read()
    assert os.path.abspath(res.artifacts["gguf_quant"]) in modelfile and "PARAMETER num_ctx 4096" in modelfile


def test_fine_tuned_format_survives_4bit_quantization(chain):
    _, res = chain  # the eval stage generated these with llama.cpp from the q4_k_m GGUFs
    tuned = [e["reply"] for e in res.eval["q4_k_m"]["trade"]["examples"]]
    base = [e["reply"] for e in res.eval["base"]["trade"]["examples"]]
    assert len(tuned) >= 3 and len(base) >= 3
    assert sum(MARKER in r for r in tuned) >= 2, tuned
    assert sum(formats.parse_action(r) is not None for r in tuned) >= 2, tuned
    assert not any(MARKER in r for r in base), base
    assert res.eval["q4_k_m"]["trade"]["parse_failure_rate"] <= 0.25


def test_eval_reports_agreement_per_position_beside_the_baselines(chain):
    _, res = chain
    for rung in ("q4_k_m", "base"):
        ev = res.eval[rung]["trade"]
        assert ev["n"] == 4 and 0 <= ev["accuracy"] <= 1 and 0 <= ev["parse_failure_rate"] <= 1
        assert sum(sum(row.values()) for row in ev["confusion"].values()) == 4
        assert sum(v["n"] for v in ev["per_position"].values()) == 4
        assert set(ev["baselines"]) == {"majority", "position_rule"}
        assert ev["baselines"]["majority"] <= ev["baselines"]["position_rule"] <= 1
    assert res.eval["q4_k_m"]["trade"]["baselines"] == res.eval["base"]["trade"]["baselines"]  # the same states
    assert res.eval["q4_k_m"]["trade"]["parse_failure_rate"] < res.eval["base"]["trade"]["parse_failure_rate"] + 1e-9


def test_eval_cli_json_contract_and_bad_input(chain):
    _, res = chain
    env = {**os.environ}
    test = os.path.join(res.artifacts["data"], "test.jsonl")
    out = subprocess.run([sys.executable, "-m", "agent.cli", "finetune", "eval", "--model",
                          f"gguf:{res.artifacts['gguf_quant']}", "--data", test, "--limit", "2", "--json"],
                         capture_output=True, text=True, env=env, timeout=HANG_S)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) == {"accuracy", "parse_failure_rate", "confusion", "n", "task", "per_position", "baselines",
                        "model"} and doc["n"] == 2 and doc["task"] == "trade"
    assert set(doc["baselines"]) == {"majority", "position_rule"}
    bad = subprocess.run([sys.executable, "-m", "agent.cli", "finetune", "eval", "--model", "nope:x",
                          "--data", test], capture_output=True, text=True, env=env, timeout=HANG_S)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: model spec 'nope:x'")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_second_run_skips_every_finished_stage(chain):
    cfg, _ = chain
    assert stale_stages(cfg) == ["ollama"]  # evaluations included: same models, same states
    again = run_pipeline(cfg.model_copy(update={"eval_limit": 0}), report=lambda msg: None)
    assert {"distill", "prepare", "lora", "fuse", "gguf", "quantize"} <= set(again.skipped)
    assert set(again.stages_s) == {"ollama"}


def test_changing_episodes_redoes_every_stage_built_on_the_data(chain):
    cfg, _ = chain
    stale = stale_stages(cfg.model_copy(update={"episodes": cfg.episodes + 1, "eval_limit": 0}))
    assert stale == ["distill", "prepare", "lora", "fuse", "gguf", "quantize", "ollama"]


def test_changing_the_base_redoes_lora_fuse_gguf_quantize_but_not_the_data(chain, tmp_path):
    cfg, _ = chain
    base = tmp_path / "other-base"
    base.mkdir()
    (base / "config.json").write_text('{"model_type": "llama"}')
    (base / "model.safetensors").write_bytes(b"weights v1")
    other = cfg.model_copy(update={"base": str(base), "eval_limit": 0, "route_n": 0})
    assert stale_stages(other) == ["lora", "fuse", "gguf", "quantize", "ollama"]
    # same path, new content: the keys follow the content, not the path
    from finetune.pipeline import PipelineResult, plan_stages

    def keys():
        return {s.name: s.key for s in plan_stages(other, PipelineResult(stages_s={}, skipped=[], artifacts={}))}

    before = keys()
    (base / "model.safetensors").write_bytes(b"weights v2")
    after = keys()
    assert [n for n in before if before[n] != after[n]] == ["lora", "fuse", "gguf", "quantize"]
