"""`trader bench llm`: generation speed of the embedded Qwen in three runtimes, same prompts, same process.

- `q4_k_m_tokens_per_s`: the embedded Q4_K_M GGUF in llama.cpp (what the agent runs);
- `f16_tokens_per_s`: the same model as an f16 GGUF in llama.cpp (same runtime: the ratio is the quantisation's);
- `hf_f16_tokens_per_s`: the same weights in float16 in transformers.
Targets: q4_k_m >= 2x f16 GGUF and >= 3x transformers f16. The llama.cpp build's CPU features
(`llama_print_system_info`) are reported beside the numbers, since they decide the speed (and, with AMX, whether
batched decode crashes on some builds). Threads are the same for both runtimes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from trader_core.cli_utils import progress

PROMPTS = (
    "Explain in a few sentences how an automated market maker like Uniswap sets the price of ETH.",
    "List five risks of trading ETH with a reinforcement-learning policy and say why each matters.",
    "Describe what a stop-loss is and when a trader would move it.",
    "Write a short note on why hourly volatility matters for position sizing.",
)


def llama_system_info() -> dict:
    """llama.cpp's build features as {"text": raw line, "features": [enabled flags]}."""
    import llama_cpp

    raw = llama_cpp.llama_print_system_info()
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    feats = []
    for part in text.split("|"):
        name, _, value = part.rpartition("=")
        if value.strip() == "1":
            feats.append(name.split(":")[-1].strip())  # "CPU : SSE3 = 1" -> SSE3
    return {"version": getattr(llama_cpp, "__version__", "?"), "text": text.strip(), "features": sorted(set(feats))}


def _llama_rate(path: str, prompts: list[str], max_tokens: int, threads: int) -> float:
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=1024, n_threads=threads, verbose=False, seed=0)
    chat = [[{"role": "user", "content": p}] for p in prompts]
    llm.create_chat_completion(messages=chat[0], max_tokens=4, temperature=0)  # warm-up
    tokens, t0 = 0, time.perf_counter()
    for msgs in chat:
        out = llm.create_chat_completion(messages=msgs, max_tokens=max_tokens, temperature=0)
        tokens += out["usage"]["completion_tokens"]
    rate = tokens / (time.perf_counter() - t0)
    del llm
    return rate


def _hf_rate(folder: str, prompts: list[str], max_tokens: int, threads: int) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float16).eval()

    def gen(prompt: str, n: int) -> int:
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
        return out.shape[1] - ids["input_ids"].shape[1]

    gen(prompts[0], 4)  # warm-up
    tokens, t0 = 0, time.perf_counter()
    for p in prompts:
        tokens += gen(p, max_tokens)
    return tokens / (time.perf_counter() - t0)


def qwen_f16_gguf(report: Callable[[str], None] = progress) -> Path:
    """The embedded Qwen as an f16 GGUF (dequantised base -> llama.cpp converter), built once into the cache."""
    from finetune.convert.export import GgufConfig, convert_to_gguf, gguf_path
    from finetune.base_models.store import models_dir
    from finetune.base_models.sources import dequantize_qwen

    cfg = GgufConfig(model="", out=str(models_dir() / "qwen2.5-coder-0.5b-f16"))
    out = gguf_path(cfg)
    if not out.exists():
        folder = dequantize_qwen(report=report)
        report("converting the embedded Qwen to an f16 GGUF (once) ...")
        convert_to_gguf(cfg.model_copy(update={"model": str(folder)}))
    return out


def run_bench(prompts: int = 4, max_tokens: int = 64, threads: int | None = None,
              report: Callable[[str], None] = progress) -> dict:
    """Tokens/s of the embedded Qwen: q4_k_m and f16 in llama.cpp, f16 in transformers; ratios and targets."""
    from finetune.base_models.store import qwen_gguf
    from finetune.base_models.sources import dequantize_qwen

    threads = threads or int(os.environ.get("TRADER_LLM_THREADS", 0) or 0) or max(1, min(8, os.cpu_count() or 1))
    texts = list(PROMPTS[:prompts]) or list(PROMPTS[:1])
    q4_path = qwen_gguf(report=report)
    f16_path = qwen_f16_gguf(report=report)
    hf_dir = dequantize_qwen(report=report)
    report(f"timing generation with {threads} thread(s): q4_k_m (llama.cpp) ...")
    q4 = _llama_rate(str(q4_path), texts, max_tokens, threads)
    report("timing generation: f16 GGUF (llama.cpp) ...")
    f16 = _llama_rate(str(f16_path), texts, max_tokens, threads)
    report("timing generation: f16 (transformers) ...")
    hf = _hf_rate(str(hf_dir), texts, max_tokens, threads)
    return {
        "model": "Qwen2.5-Coder-0.5B-Instruct (embedded)",
        "q4_k_m_tokens_per_s": round(q4, 2), "f16_tokens_per_s": round(f16, 2), "hf_f16_tokens_per_s": round(hf, 2),
        "q4_vs_f16": round(q4 / f16, 2) if f16 else None, "q4_vs_hf_f16": round(q4 / hf, 2) if hf else None,
        "targets": {"q4_vs_f16": 2.0, "q4_vs_hf_f16": 3.0},
        "threads": threads, "prompts": len(texts), "max_tokens": max_tokens,
        "llama_cpp": llama_system_info(),
    }


def _rate_with(model, prompts: list[str], max_tokens: int, threads: int) -> float:
    from finetune.llm_backends.runtime import load_llama

    llm = load_llama(model.gguf, model.lora, n_ctx=1024, n_threads=threads)
    chat = [[{"role": "user", "content": p}] for p in prompts]
    llm.create_chat_completion(messages=chat[0], max_tokens=4, temperature=0)
    tokens, t0 = 0, time.perf_counter()
    for msgs in chat:
        tokens += llm.create_chat_completion(messages=msgs, max_tokens=max_tokens, temperature=0)["usage"][
            "completion_tokens"]
    return tokens / (time.perf_counter() - t0)


def compare_builds(prompts: int = 4, max_tokens: int = 64, threads: int | None = None,
                   report: Callable[[str], None] = progress) -> dict:
    """trader-qwen-rl built both ways from the shipped adapter, each in a fresh folder: setup seconds (the
    dequantised base that fusing needs is timed apart: a fresh install pays it once) and tokens/s."""
    import tempfile

    from finetune.base_models.sources import dequantize_qwen
    from finetune.convert.trader_model import ensure_trader_model

    threads = threads or int(os.environ.get("TRADER_LLM_THREADS", 0) or 0) or max(1, min(8, os.cpu_count() or 1))
    texts = list(PROMPTS[:prompts]) or list(PROMPTS[:1])
    t0 = time.perf_counter()
    dequantize_qwen(report=report)
    out: dict = {"dequantise_base_s": round(time.perf_counter() - t0, 1), "threads": threads}
    saved = os.environ.get("TRADER_MODELS_DIR")
    try:
        for method in ("lora", "fused"):
            with tempfile.TemporaryDirectory() as tmp:
                os.environ["TRADER_MODELS_DIR"] = tmp
                t0 = time.perf_counter()
                model = ensure_trader_model(method, report=report)
                setup = time.perf_counter() - t0
                size = sum(Path(p).stat().st_size for p in (model.gguf, model.lora) if p)
                report(f"timing generation: {method} ...")
                out[method] = {"setup_s": round(setup, 1), "tokens_per_s": round(_rate_with(model, texts, max_tokens,
                                                                                             threads), 2),
                               "files_mb": round(size / 2**20, 1)}
    finally:
        if saved is None:
            os.environ.pop("TRADER_MODELS_DIR", None)
        else:
            os.environ["TRADER_MODELS_DIR"] = saved
    return out
