"""`trader-qwen-rl` on every install: the embedded Qwen base + the adapter shipped in this repository.

Two ways to run the shipped LoRA adapter in llama.cpp, both built once into the model cache and rebuilt only
when the base GGUF or the adapter change (the cache key is a hash of their contents, never of paths):

- `lora`  (default): the adapter converted to a GGUF LoRA by llama.cpp's `convert_lora_to_gguf.py` and applied
  at load on the untouched Q4_K_M base. The adapter was trained on exactly those (dequantised) base weights,
  so nothing is re-quantised; setup takes seconds and needs no dequantised copy of the base.
- `fused`: the adapter merged into the dequantised base (float16), converted to GGUF and re-quantised to
  q4_k_m, as `trader finetune all` does. One file, which an Ollama server can serve.

The measured comparison (setup seconds, agreement, tokens/s) is in the adapter's eval report. The agent calls
`ensure_trader_model()` and loads `TraderModel.gguf` with `TraderModel.lora` (see `finetune.llm_backends.runtime.load_llama`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel

from finetune.base_models.store import QWEN_Q4, models_dir, qwen_gguf
from trader_core.cli_utils import progress
from trader_core.errors import ModelError

SHIPPED_ADAPTER = Path(__file__).parents[1] / "adapters" / "trader-qwen-rl"
MODEL_NAME = "trader-qwen-rl"
BASE_LABEL = "Qwen2.5-Coder-0.5B-Instruct"
RECIPE_VERSION = 1  # bump when the build steps change, so every cached build is redone
Method = Literal["lora", "fused"]
DEFAULT_METHOD: Method = "lora"


class TraderModel(BaseModel):
    """A ready-to-load trader model: the GGUF, plus the GGUF LoRA to apply at load (None when fused)."""

    name: str
    method: Method
    gguf: str
    lora: str | None = None
    base_sha256: str
    adapter_sha256: str
    build_seconds: float = 0.0

    @property
    def spec(self) -> str:
        """The `gguf:` model spec of finetune.llm_backends.runtime (and `trader finetune eval --model`)."""
        return f"gguf:{self.gguf}" + (f"+{self.lora}" if self.lora else "")

    @property
    def label(self) -> str:
        return f"{self.name} ({BASE_LABEL} + RL LoRA, {'GGUF LoRA at load' if self.lora else 'fused q4_k_m'})"


def adapter_digest(adapter_dir: Path) -> str:
    """sha256 over the adapter's weights and PEFT config (file names and contents, not paths or times)."""
    peft = Path(adapter_dir) / "peft"
    files = [peft / "adapter_model.safetensors", peft / "adapter_config.json"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ModelError(f"the trader adapter is incomplete (missing {', '.join(missing)}); "
                         "restore finetune/adapters/trader-qwen-rl from git or retrain it")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _build_key(method: str, base_sha: str, adapter_sha: str) -> str:
    return hashlib.sha256(f"{RECIPE_VERSION}:{method}:{base_sha}:{adapter_sha}".encode()).hexdigest()[:16]


def base_config_dir(gguf: Path, out: Path) -> Path:
    """config.json of the base, from the GGUF's header (no weights, no vocabulary): all the LoRA converter needs
    to know the architecture. The keys map as transformers maps them (its GGUF_CONFIG_MAPPING); reading them
    through transformers parsed every token of Qwen's vocabulary first (22 s on 2 cores), and the tokenizer the
    converter never reads took as long again."""
    if (out / "config.json").exists():
        return out
    from transformers import AutoConfig
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from finetune.convert.gguf_header import read_gguf_header

    head = read_gguf_header(gguf)
    arch = str(head.values.get("general.architecture"))
    if arch not in GGUF_CONFIG_MAPPING or arch not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelError(f"{gguf}: architecture {arch!r} has no transformers config mapping; use --method fused")
    fields = {hf_key: head.values[f"{arch}.{gguf_key}"] for gguf_key, hf_key in GGUF_CONFIG_MAPPING[arch].items()
              if hf_key and f"{arch}.{gguf_key}" in head.values}
    fields.setdefault("vocab_size", head.array_lengths.get("tokenizer.ggml.tokens"))
    config = AutoConfig.for_model(arch, **{k: v for k, v in fields.items() if v is not None},
                                  tie_word_embeddings="output.weight" not in head.tensor_names,
                                  architectures=[MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[arch]])
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    config.save_pretrained(tmp)
    tmp.rename(out)
    return out


def _build_lora(adapter: Path, base: Path, work: Path, report: Callable[[str], None]) -> TraderModel:
    from finetune.convert.export import LoraGgufConfig, convert_lora_to_gguf

    report("converting the trader adapter to a GGUF LoRA (llama.cpp convert_lora_to_gguf) ...")
    cfg_dir = base_config_dir(base, models_dir() / f"{base.stem}-config")
    res = convert_lora_to_gguf(LoraGgufConfig(adapter_path=str(adapter), base_config=str(cfg_dir),
                                              out=str(work / "trader-qwen-rl-lora-f16.gguf")))
    return TraderModel(name=MODEL_NAME, method="lora", gguf=str(base), lora=res.path, base_sha256="", adapter_sha256="")


def _build_fused(adapter: Path, base: Path, work: Path, report: Callable[[str], None]) -> TraderModel:
    from finetune.convert.export import FuseConfig, GgufConfig, QuantizeConfig, convert_to_gguf, fuse, quantize

    report("fusing the trader adapter into the base (float16) ...")
    fused = fuse(FuseConfig(adapter_path=str(adapter), save_path=str(work / "fused")))
    report("converting to GGUF f16 ...")
    f16 = convert_to_gguf(GgufConfig(model=fused.path, out=str(work / "gguf")))
    report("quantizing to q4_k_m ...")
    q4 = quantize(QuantizeConfig(gguf=f16.path, out=str(work / "trader-qwen-rl-q4_k_m.gguf")))
    shutil.rmtree(work / "fused", ignore_errors=True)  # 1 GB of float16 weights, no longer needed
    Path(f16.path).unlink(missing_ok=True)
    return TraderModel(name=MODEL_NAME, method="fused", gguf=q4.path, base_sha256="", adapter_sha256="")


def ensure_trader_model(method: Method = DEFAULT_METHOD, adapter: str | Path | None = None,
                        report: Callable[[str], None] = progress) -> TraderModel:
    """The built trader model (built on first use, then reused until the base or the adapter change)."""
    adapter_dir = Path(adapter) if adapter else SHIPPED_ADAPTER
    base = qwen_gguf(report=report)
    base_sha, adapter_sha = QWEN_Q4.sha256, adapter_digest(adapter_dir)
    work = models_dir() / f"{MODEL_NAME}-{method}-{_build_key(method, base_sha, adapter_sha)}"
    manifest = work / "manifest.json"
    if manifest.exists():
        try:
            model = TraderModel.model_validate_json(manifest.read_text())
            if Path(model.gguf).is_file() and (model.lora is None or Path(model.lora).is_file()):
                return model
        except ValueError:
            pass  # a damaged manifest: rebuild
    t0 = time.perf_counter()
    report(f"building {MODEL_NAME} ({method}) from {base.name} + {adapter_dir.name} (once) ...")
    work.mkdir(parents=True, exist_ok=True)
    build = _build_lora if method == "lora" else _build_fused
    model = build(adapter_dir, base, work, report).model_copy(update={
        "base_sha256": base_sha, "adapter_sha256": adapter_sha, "build_seconds": round(time.perf_counter() - t0, 1)})
    manifest.write_text(model.model_dump_json(indent=2) + "\n")
    report(f"{MODEL_NAME} ready in {model.build_seconds:.0f} s: {model.spec.removeprefix('gguf:')}")
    return model


def default_model_spec(report: Callable[[str], None] = progress) -> str:
    """The `gguf:` spec of exactly the model the agent uses (`trader finetune eval --model default`)."""
    return ensure_trader_model(report=report).spec


def ship_adapter(adapter_dir: str | Path, report: dict, command: str, dest: Path = SHIPPED_ADAPTER,
                 base: str = "qwen2.5-coder-0.5b") -> Path:
    """Copy a trained adapter into the repository (weights, both configs, train log) with the eval report of the
    run that made it and the command that reproduces it; machine paths are replaced by the recipe's names."""
    src = Path(adapter_dir)
    (dest / "peft").mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "peft" / "adapter_model.safetensors", dest / "peft" / "adapter_model.safetensors")
    peft_cfg = json.loads((src / "peft" / "adapter_config.json").read_text())
    peft_cfg["base_model_name_or_path"] = base
    (dest / "peft" / "adapter_config.json").write_text(json.dumps(peft_cfg, indent=2, sort_keys=True) + "\n")
    ours = json.loads((src / "adapter_config.json").read_text())
    ours.update({"model": base, "data": "runs/finetune/data/mix", "adapter_path": "runs/finetune/adapters/stage2"})
    (dest / "adapter_config.json").write_text(json.dumps(ours, indent=2, sort_keys=True) + "\n")
    if (src / "train_log.json").exists():
        log = json.loads((src / "train_log.json").read_text())
        log["adapter_path"] = ours["adapter_path"]
        (dest / "train_log.json").write_text(json.dumps(log, indent=1) + "\n")
    (dest / "eval_report.json").write_text(json.dumps({"command": command, **report}, indent=1) + "\n")
    return dest


def shipped_report() -> dict:
    """The eval report of the run that produced the shipped adapter ({} when absent)."""
    path = SHIPPED_ADAPTER / "eval_report.json"
    return json.loads(path.read_text()) if path.exists() else {}
