"""The LoRA run's typed config (mlx-lm's YAML keys + `backend` + `compute_dtype`) and its learning-rate
schedule: shared by `lora` (which dispatches to a backend) and `peft_backend` (which trains), so neither
imports the other's internals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trader_core.config import resolve_config
from trader_core.errors import ConfigError

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
    compute_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="PEFT matmul precision (weights and adapters stay float32): auto = bfloat16 autocast "
                            "on a GPU or a CPU with bf16 kernels (AMX/AVX512-BF16), else float32.")


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
