"""`trader finetune lora`: LoRA training from one mlx-lm style YAML, on MLX (mlx_lm.lora) or PEFT.

The YAML keys are mlx-lm's (model, data, fine_tune_type, num_layers, lora_parameters, iters, ...), so
the same file trains on a Mac with MLX and on a GPU/CPU box with transformers + PEFT. The resolved
config is written as `adapter_config.json` beside the adapters and read back by `fuse` and by a
stage-2 run that resumes this adapter.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from finetune.artifacts import config_matches
from trader_core.config import resolve_config, save_config
from trader_core.errors import ConfigError, DependencyMissing, ModelError

CONFIG = "adapter_config.json"
LOG = "train_log.json"
PEFT_SUBDIR = "peft"  # PEFT writes its own adapter_config.json; keep it apart from ours
DEFAULT_KEYS = ["self_attn.q_proj", "self_attn.v_proj"]
OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"


class LoraParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rank: int = Field(8, ge=1, description="LoRA rank r.")
    scale: float = Field(20.0, gt=0, description="mlx-lm scale; PEFT lora_alpha = scale * rank.")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout.")
    keys: list[str] | None = Field(None, description="Module paths inside a block, e.g. self_attn.q_proj.")


class LoraConfig(BaseModel):
    """mlx-lm's LoRA YAML keys (+ `backend`); unknown keys are an error so typos never pass silently."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., description="Base model: HF folder, hub id, or 'smollm2-135m'.")
    train: bool = True
    data: str = Field(..., description="Folder with train.jsonl and valid.jsonl (chat format).")
    fine_tune_type: Literal["lora"] = "lora"
    num_layers: int = Field(16, description="Adapt the last N blocks (-1 = all).")
    lora_parameters: LoraParameters = LoraParameters()
    iters: int = Field(600, ge=1)
    batch_size: int = Field(4, ge=1)
    learning_rate: float = Field(1e-5, gt=0)
    lr_schedule: dict | None = Field(None, description="mlx-lm schedule: {name: cosine_decay, warmup, arguments}.")
    optimizer: Literal["adam", "adamw"] = "adam"
    resume_adapter_file: str | None = Field(None, description="Stage-1 adapter to continue from.")
    adapter_path: str = "adapters"
    mask_prompt: bool = Field(True, description="Loss on the answer only.")
    max_seq_length: int = 2048
    steps_per_report: int = 10
    steps_per_eval: int = 200
    val_batches: int = Field(25, description="-1 = the whole validation set.")
    save_every: int = 100
    grad_checkpoint: bool = False
    seed: int = 0
    test: bool = False
    test_batches: int = 500
    backend: Literal["auto", "mlx", "peft"] = Field("auto", description="auto: mlx on macOS with mlx, else peft.")


class LoraResult(BaseModel):
    adapter_path: str
    backend: str
    train_loss: list[tuple[int, float]]
    val_loss: list[tuple[int, float]]
    seconds: float


def load_lora_config(file: str | Path | None, **overrides) -> LoraConfig:
    """YAML (mlx-lm keys) < CLI overrides -> LoraConfig; `model` resolved to a local folder when bundled."""
    return resolve_config(LoraConfig, overrides, file, env_prefix="TRADER_LORA_")


def read_adapter_config(adapter_path: str | Path) -> LoraConfig:
    """Our keys from adapter_config.json (mlx-lm adds its own keys beside them in the same file)."""
    path = Path(adapter_path) / CONFIG
    if not path.exists():
        raise ConfigError(f"{path} is missing: {adapter_path} was not written by `trader finetune lora`")
    data = json.loads(path.read_text())
    try:
        return LoraConfig.model_validate({k: v for k, v in data.items() if k in LoraConfig.model_fields})
    except ValueError as exc:
        raise ConfigError(f"{path} is not a LoRA config this toolkit wrote: {str(exc).splitlines()[0]}") from None


def pick_backend(wanted: str) -> str:
    if wanted != "auto":
        return wanted
    if platform.system() == "Darwin":
        import importlib.util

        if importlib.util.find_spec("mlx") and importlib.util.find_spec("mlx_lm"):
            return "mlx"
    return "peft"


def _adapter_dir(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_dir() else path.parent


def check_resume(config: LoraConfig, backend: str) -> Path | None:
    """The stage-1 adapter folder, after checking its shapes match this run (a clear error otherwise)."""
    if not config.resume_adapter_file:
        return None
    src = _adapter_dir(config.resume_adapter_file)
    if not (src / CONFIG).exists():
        raise ConfigError(f"resume_adapter_file {config.resume_adapter_file}: no {CONFIG} beside it; "
                          "pass an adapter folder written by `trader finetune lora`")
    prev = json.loads((src / CONFIG).read_text())
    mine = config.lora_parameters.model_dump()
    theirs = {**LoraParameters().model_dump(), **(prev.get("lora_parameters") or {})}
    diffs = [f"{k} {theirs.get(k)} vs {mine[k]}" for k in ("rank", "keys") if theirs.get(k) != mine[k]]
    if prev.get("num_layers") != config.num_layers:
        diffs.append(f"num_layers {prev.get('num_layers')} vs {config.num_layers}")
    if prev.get("model") != config.model:
        diffs.append(f"model {prev.get('model')} vs {config.model}")
    if prev.get("backend") not in (None, backend):
        diffs.append(f"backend {prev.get('backend')} vs {backend}")
    if diffs:
        raise ConfigError(f"stage-1 adapter {src} does not fit this run ({'; '.join(diffs)}); "
                          "use the same model, num_layers and lora_parameters as stage 1, or drop resume_adapter_file")
    return src


def lr_at(step: int, config: LoraConfig) -> float:
    """mlx-lm style schedule: linear warmup, then cosine_decay(init, decay_steps, end) or constant."""
    import math

    sched = config.lr_schedule or {}
    warmup = int(sched.get("warmup", 0))
    if step < warmup:
        start = float(sched.get("warmup_init", 0.0))
        return start + (config.learning_rate - start) * step / max(1, warmup)
    if sched.get("name") == "cosine_decay":
        args = list(sched.get("arguments") or [config.learning_rate, config.iters])
        init, steps = float(args[0]), max(1, int(args[1]))
        end = float(args[2]) if len(args) > 2 else 0.0
        t = min(step - warmup, steps) / steps
        return end + (init - end) * 0.5 * (1 + math.cos(math.pi * t))
    return config.learning_rate


def train_lora(config: LoraConfig) -> LoraResult:
    """Train, save adapters + adapter_config.json (+ train_log.json) in `adapter_path`."""
    backend = pick_backend(config.backend)
    config = config.model_copy(update={"backend": backend})
    resume = check_resume(config, backend)
    data = Path(config.data)
    for split in ("train", "valid"):
        if not (data / f"{split}.jsonl").exists():
            raise ConfigError(f"data folder {data} lacks {split}.jsonl; run `trader finetune prepare` first")
    out = Path(config.adapter_path)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if backend == "mlx":
        train, val = _train_mlx(config, out)
    else:
        from finetune.peft_backend import train_peft

        train, val = train_peft(config, out, resume)
    result = LoraResult(adapter_path=str(out), backend=backend, train_loss=train, val_loss=val,
                        seconds=round(time.perf_counter() - t0, 2))
    (out / LOG).write_text(json.dumps(result.model_dump(), indent=1) + "\n")
    if backend == "mlx" and (out / CONFIG).exists():
        merged = {**json.loads((out / CONFIG).read_text()), **config.model_dump(mode="json")}
        (out / CONFIG).write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    else:
        save_config(config, out, CONFIG)
    return result


def is_done(config: LoraConfig) -> bool:
    """Adapters exist and were trained by this exact config (backend resolved)."""
    config = config.model_copy(update={"backend": pick_backend(config.backend)})
    out = Path(config.adapter_path)
    weights = (out / PEFT_SUBDIR / "adapter_model.safetensors").exists() or (out / "adapters.safetensors").exists()
    if not (weights and (out / LOG).exists() and (out / CONFIG).exists()):
        return False
    if config.backend == "peft":
        return config_matches(out, CONFIG, config)
    saved = json.loads((out / CONFIG).read_text())
    return all(saved.get(k) == v for k, v in config.model_dump(mode="json").items())


_ITER = re.compile(r"Iter (\d+): (Train|Val) loss ([0-9.]+)")  # mlx-lm < 0.30 progress lines
_ROW_VAL = re.compile(r"^\s*(\d+)\s+val\s+([0-9.]+)", re.M)  # mlx-lm >= 0.30 table rows
_ROW_TRAIN = re.compile(r"^\s*(\d+)\s+([0-9.]+)\s*[\u25bc\u25b2=\-]?\s+\d", re.M)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_mlx_log(text: str) -> tuple[list, list]:
    """(train, val) losses from mlx_lm.lora output, old line format or new table format."""
    text = _ANSI.sub("", text)
    train, val = [], []
    for step, kind, loss in _ITER.findall(text):
        (train if kind == "Train" else val).append((int(step), float(loss)))
    if not train and not val:
        val = [(int(s), float(v)) for s, v in _ROW_VAL.findall(text)]
        train = [(int(s), float(v)) for s, v in _ROW_TRAIN.findall(text)]
    return train, val


def _train_mlx(config: LoraConfig, out: Path) -> tuple[list, list]:
    """mlx_lm.lora in a subprocess with the same keys (minus `backend`), OpenBLAS preloaded on Linux."""
    import importlib.util

    import yaml

    if importlib.util.find_spec("mlx_lm") is None:
        raise DependencyMissing("mlx-lm is not installed; install it with: pip install 'mlx[cpu]' mlx-lm "
                                "(Linux) or pip install mlx-lm (macOS), or use backend: peft")
    keys = config.model_dump(mode="json", exclude={"backend"}, exclude_none=True)
    if keys["lora_parameters"].get("keys") is None:
        keys["lora_parameters"].pop("keys", None)
    from finetune.models import resolve_base

    keys["model"] = resolve_base(config.model)
    keys["save_every"] = config.save_every or config.iters  # mlx-lm divides by it
    if config.resume_adapter_file and Path(config.resume_adapter_file).is_dir():
        keys["resume_adapter_file"] = str(Path(config.resume_adapter_file) / "adapters.safetensors")
    yaml_path = out / "mlx_lora.yaml"
    yaml_path.write_text(yaml.safe_dump(keys, sort_keys=False))
    env = {**os.environ, "NO_COLOR": "1"}
    # mlx-cpu's bundled BLAS is ~30x slower than OpenBLAS (5 LoRA iterations: 164 s -> 11 s)
    if platform.system() == "Linux" and Path(OPENBLAS).exists():
        env["LD_PRELOAD"] = OPENBLAS
    proc = subprocess.run([sys.executable, "-m", "mlx_lm", "lora", "--config", str(yaml_path)],
                          capture_output=True, text=True, env=env)
    (out / "mlx_lora.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"mlx_lm.lora failed: {tail} (full log: {out / 'mlx_lora.log'})")
    return parse_mlx_log(proc.stdout + proc.stderr)
