"""`trader bench llm`: the pipeline's stage wall times on the small model, then generation speed of the
q4_k_m GGUF (llama.cpp) against the f16 fused model (transformers) on the same prompts, same process.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from finetune.dataset import labels
from finetune.pipeline import PipelineConfig, run_pipeline
from trader_core.runtime import trader_home


def _llama_rate(path: str, requests: list[list[dict]], max_tokens: int) -> float:
    from llama_cpp import Llama

    from trader_core.runtime import default_torch_threads

    llm = Llama(model_path=path, n_ctx=1024, n_threads=default_torch_threads(), verbose=False, seed=0)
    llm.create_chat_completion(messages=requests[0], max_tokens=4, temperature=0)  # warm-up
    tokens, t0 = 0, time.perf_counter()
    for msgs in requests:
        out = llm.create_chat_completion(messages=msgs, max_tokens=max_tokens, temperature=0)
        tokens += out["usage"]["completion_tokens"]
    return tokens / (time.perf_counter() - t0)


def _hf_rate(folder: str, requests: list[list[dict]], max_tokens: int) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trader_core.runtime import configure_torch

    configure_torch()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float16).eval()

    def gen(msgs, n):
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.eos_token_id)
        return out.shape[1] - ids["input_ids"].shape[1]

    gen(requests[0], 4)  # warm-up
    tokens, t0 = 0, time.perf_counter()
    for msgs in requests:
        tokens += gen(msgs, max_tokens)
    return tokens / (time.perf_counter() - t0)


def run_bench(iters: int = 30, prompts: int = 4, max_tokens: int = 64, out: str | None = None,
              report: Callable[[str], None] = print) -> dict:
    """{"q4_k_m_tokens_per_s", "f16_tokens_per_s", "ratio", "stages_s"} on a fresh pipeline run."""
    work = Path(out) if out else trader_home() / "bench" / f"llm-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = PipelineConfig(out=str(work), episodes=4, steps=100, iters=iters, eval_limit=0)
    result = run_pipeline(cfg, report=report)
    requests = [msgs for msgs, _ in labels(Path(result.artifacts["data"]) / "test.jsonl")[:prompts]]
    report("timing generation: q4_k_m (llama.cpp) ...")
    q4 = _llama_rate(result.artifacts["gguf_quant"], requests, max_tokens)
    report("timing generation: f16 (transformers) ...")
    f16 = _hf_rate(result.artifacts["fused"], requests, max_tokens)
    return {"q4_k_m_tokens_per_s": round(q4, 2), "f16_tokens_per_s": round(f16, 2),
            "ratio": round(q4 / f16, 2) if f16 else None, "stages_s": result.stages_s, "out": str(work)}
