"""`trader finetune fuse | gguf | quantize`: adapters -> merged HF folder -> f16 GGUF -> q4_k_m GGUF; and the
other way to run an adapter in llama.cpp: `convert_lora_to_gguf` (a GGUF LoRA applied at load).

Fusing always goes to a Hugging Face folder first and llama.cpp's own converter makes the GGUF:
`mlx_lm.fuse --export-gguf` writes files llama.cpp cannot load.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from finetune.artifacts import config_matches
from finetune.train.lora_config import OPENBLAS, PEFT_SUBDIR, read_adapter_config
from finetune.base_models.sources import fix_rope_theta, llama_cpp_dir, resolve_base
from trader_core.config import save_config
from trader_core.errors import ConfigError, DependencyMissing, ModelError

FUSE_CONFIG = "fuse_config.json"
GGUF_CONFIG = "gguf_config.json"
QUANT_TYPES = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
               "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}


class FuseConfig(BaseModel):
    adapter_path: str = Field(..., description="Folder written by `trader finetune lora`.")
    save_path: str = Field("runs/finetune/fused", description="Output Hugging Face folder.")
    dtype: Literal["float16", "bfloat16", "float32"] = "float16"


class GgufConfig(BaseModel):
    model: str = Field(..., description="Hugging Face folder (from fuse).")
    out: str = Field("runs/finetune/gguf", description="Output folder for model-f16.gguf.")
    outtype: Literal["f16", "bf16", "f32", "q8_0"] = "f16"


class QuantizeConfig(BaseModel):
    gguf: str = Field(..., description="Input GGUF (f16).")
    quant: Literal["q4_k_m", "q5_k_m", "q8_0", "q4_0"] = "q4_k_m"
    out: str | None = Field(None, description="Output file; default: beside the input, model-<quant>.gguf.")


class LoraGgufConfig(BaseModel):
    adapter_path: str = Field(..., description="Folder written by `trader finetune lora` (PEFT backend).")
    base_config: str = Field(..., description="Folder with the base model's config.json (weights not needed).")
    out: str = Field(..., description="Output GGUF LoRA file.")
    outtype: Literal["f16", "f32", "bf16", "q8_0"] = "f16"


class ExportResult(BaseModel):
    path: str
    seconds: float
    size_mb: float


def _result(path: Path, t0: float) -> ExportResult:
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return ExportResult(path=str(path), seconds=round(time.perf_counter() - t0, 2), size_mb=round(size / 2**20, 1))


def fuse(config: FuseConfig) -> ExportResult:
    """Merge the LoRA adapter into its base model and save a float16 HF folder (tokenizer, chat template)."""
    t0 = time.perf_counter()
    lora = read_adapter_config(config.adapter_path)
    out = Path(config.save_path)
    if lora.backend == "mlx":
        proc = subprocess.run([sys.executable, "-m", "mlx_lm", "fuse", "--model", resolve_base(lora.model),
                               "--adapter-path", config.adapter_path, "--save-path", str(out)],
                              capture_output=True, text=True, env=_mlx_env())
        if proc.returncode != 0:
            raise ModelError(f"mlx_lm.fuse failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    else:
        import torch
        from peft import PeftModel

        from finetune.train.peft_backend import load_base

        base, tok = load_base(lora.model)
        try:
            merged = PeftModel.from_pretrained(base, str(Path(config.adapter_path) / PEFT_SUBDIR)).merge_and_unload()
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"cannot merge adapter {config.adapter_path}: {str(exc).splitlines()[0]}") from None
        merged = merged.to(getattr(torch, config.dtype))
        merged.save_pretrained(out)
        tok.save_pretrained(out)
    fix_rope_theta(out)
    save_config(config, out, FUSE_CONFIG)
    return _result(out, t0)


def fuse_done(config: FuseConfig) -> bool:
    out = Path(config.save_path)
    return any(out.glob("*.safetensors")) and config_matches(out, FUSE_CONFIG, config)


def _mlx_env() -> dict:
    env = dict(os.environ)
    if platform.system() == "Linux" and Path(OPENBLAS).exists():
        env["LD_PRELOAD"] = OPENBLAS
    return env


def gguf_path(config: GgufConfig) -> Path:
    return Path(config.out) / f"model-{config.outtype}.gguf"


def convert_to_gguf(config: GgufConfig) -> ExportResult:
    """llama.cpp's convert_hf_to_gguf.py on the fused folder -> model-f16.gguf."""
    t0 = time.perf_counter()
    src = Path(config.model)
    if not (src / "config.json").exists():
        raise ConfigError(f"{src} is not a Hugging Face model folder (no config.json); run `trader finetune fuse`")
    script = llama_cpp_dir() / "convert_hf_to_gguf.py"
    out = gguf_path(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, str(script), str(src), "--outfile", str(out), "--outtype", config.outtype],
                          capture_output=True, text=True)
    (out.parent / "convert.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out.exists():
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()] or ["no output"]
        raise ModelError(f"convert_hf_to_gguf failed: {lines[-1]} (log: {out.parent / 'convert.log'})")
    save_config(config, out.parent, GGUF_CONFIG)
    return _result(out, t0)


def gguf_done(config: GgufConfig) -> bool:
    return gguf_path(config).exists() and config_matches(config.out, GGUF_CONFIG, config)


def convert_lora_to_gguf(config: LoraGgufConfig) -> ExportResult:
    """llama.cpp's convert_lora_to_gguf.py on a PEFT adapter -> a GGUF LoRA (`Llama(..., lora_path=...)`)."""
    t0 = time.perf_counter()
    peft_dir = Path(config.adapter_path) / PEFT_SUBDIR
    if not (peft_dir / "adapter_model.safetensors").exists():
        raise ConfigError(f"{config.adapter_path} holds no PEFT adapter ({PEFT_SUBDIR}/adapter_model.safetensors); "
                          "train it with `trader finetune lora --backend peft`")
    if not (Path(config.base_config) / "config.json").exists():
        raise ConfigError(f"{config.base_config} has no config.json (the base model's architecture)")
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    script = llama_cpp_dir() / "convert_lora_to_gguf.py"
    proc = subprocess.run([sys.executable, str(script), str(peft_dir), "--base", str(config.base_config),
                           "--outfile", str(out), "--outtype", config.outtype], capture_output=True, text=True)
    (out.parent / "convert_lora.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out.exists():
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()] or ["no output"]
        raise ModelError(f"convert_lora_to_gguf failed: {lines[-1]} (log: {out.parent / 'convert_lora.log'})")
    return _result(out, t0)


def quantized_path(config: QuantizeConfig) -> Path:
    if config.out:
        return Path(config.out)
    return Path(config.gguf).with_name(f"model-{config.quant}.gguf")


def quantize(config: QuantizeConfig) -> ExportResult:
    """llama.cpp's quantizer (through llama-cpp-python) -> model-q4_k_m.gguf."""
    import ctypes

    try:
        import llama_cpp
    except ImportError as exc:
        raise DependencyMissing(f"llama-cpp-python is not installed ({exc}); pip install llama-cpp-python==0.3.36") from None
    t0 = time.perf_counter()
    src = Path(config.gguf)
    if not src.exists():
        raise ConfigError(f"{src} does not exist; run `trader finetune gguf` first")
    out = quantized_path(config)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give the output file's path, e.g. {out / f'model-{config.quant}.gguf'}")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    if config.out and out.exists() and out.resolve() != src.resolve():
        raise ConfigError(f"--out {out} already exists; remove it or choose another file")
    if out.resolve() == src.resolve():
        raise ConfigError(f"--out {out} is the input file; choose another file")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[config.quant])
    params.nthread = os.cpu_count() or 1
    with _stderr_to(out.parent / f"quantize_{config.quant}.log"):  # llama.cpp logs every tensor to fd 2
        code = llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), ctypes.byref(params))
    if code != 0 or not out.exists():
        raise ModelError(f"quantizing {src} to {config.quant} failed (llama.cpp returned {code})")
    save_config(config, out.parent, f"quantize_{config.quant}_config.json")
    return _result(out, t0)


@contextmanager
def _stderr_to(path: Path):
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "w") as fh:
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quantize_done(config: QuantizeConfig) -> bool:
    out = quantized_path(config)
    return out.exists() and config_matches(out.parent, f"quantize_{config.quant}_config.json", config)


def gguf_metadata(path: str | Path) -> dict:
    """Architecture, name, file type, tokenizer model and tensor count of a GGUF (its header alone)."""
    from finetune.convert.gguf_header import read_gguf_header

    head = read_gguf_header(path)
    return {"architecture": head.values.get("general.architecture"), "name": head.values.get("general.name"),
            "file_type": head.values.get("general.file_type"), "tokenizer": head.values.get("tokenizer.ggml.model"),
            "chat_template": "tokenizer.chat_template" in head.values, "tensors": len(head.tensor_names)}
