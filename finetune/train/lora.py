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

from finetune.artifacts import config_matches
from finetune.train.lora_config import (CONFIG, DEFAULT_KEYS, LOG, OPENBLAS, PEFT_SUBDIR, LoraConfig, LoraParameters,
                                  LoraResult, load_lora_config, lr_at, read_adapter_config)
from finetune.train.peft_backend import train_peft
from trader_core.config import save_config
from trader_core.errors import ConfigError, DependencyMissing, ModelError

__all__ = ["CONFIG", "DEFAULT_KEYS", "LOG", "OPENBLAS", "PEFT_SUBDIR", "LoraConfig", "LoraParameters", "LoraResult",
           "load_lora_config", "lr_at", "read_adapter_config", "train_lora", "is_done", "check_resume",
           "pick_backend"]

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
    from finetune.base_models.sources import resolve_base

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
