"""Agreement at every rung of the export ladder, so a conversion that degrades the model is caught.

Rungs: `base` (the untuned base GGUF, the comparison the fine-tune must beat), `hf` (the fused model in
transformers: the adapter's own quality), `f16` (llama.cpp GGUF, float16), `q4_k_m` (the quantized file) and
`gguf_lora` (the q4 base with the adapter as a GGUF LoRA applied at load). Each rung is scored on the same
held-out states (trading) and held-out phrasings (routing); results are written to `<out>/eval/` and keyed
like every stage, so an unchanged model is not re-evaluated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from finetune.artifacts import stage_key

EVAL_DIR = "eval"


def rung_spec(rung: str, artifacts: dict[str, str]) -> str | None:
    """The model spec of a rung from the pipeline's artifacts (None when that rung was not built)."""
    if rung == "base":
        return f"gguf:{artifacts['base_gguf']}" if artifacts.get("base_gguf") else None
    if rung == "hf":
        return f"hf:{artifacts['fused']}"
    if rung == "f16":
        return f"gguf:{artifacts['gguf_f16']}"
    if rung == "q4_k_m":
        return f"gguf:{artifacts['gguf_quant']}"
    if rung == "gguf_lora":
        if not (artifacts.get("gguf_lora") and artifacts.get("base_gguf")):
            return None
        return f"gguf:{artifacts['base_gguf']}+{artifacts['gguf_lora']}"
    raise ValueError(f"unknown rung {rung!r}")


def eval_stages(cfg, result, model_keys: dict[str, str], data_keys: dict[str, str], stage_cls) -> list:
    """One stage per (rung, task) whose model and data exist in this run."""
    from finetune.evaluation.evaluate import EvalConfig, evaluate

    root = Path(cfg.out) / EVAL_DIR
    stages = []
    tasks = [("trade", result.artifacts.get("heldout"), cfg.eval_limit)]
    if result.artifacts.get("route_test") and cfg.route_eval_limit:
        tasks.append(("route", result.artifacts["route_test"], cfg.route_eval_limit))
    for rung in cfg.ladder:
        if rung == "base" and not result.artifacts.get("base_gguf"):
            from finetune.base_models.sources import base_gguf

            found = base_gguf(cfg.base, report=lambda m: None)
            if found is not None:
                result.artifacts["base_gguf"] = str(found)
        spec = rung_spec(rung, result.artifacts)
        if spec is None:
            continue
        for task, data, limit in tasks:
            e_cfg = EvalConfig(model=spec, data=data, limit=limit)
            out = root / f"{rung}-{task}.json"

            def run(e_cfg=e_cfg, out=out, rung=rung):
                res = evaluate(e_cfg)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps({"rung": rung, **res.model_dump()}, indent=1) + "\n")
                return res

            stages.append(stage_cls(name=f"eval_{rung}_{task}", run=run, outputs=[str(out)],
                                    key=stage_key(e_cfg, model_keys[rung], data_keys[task])))
    return stages


def collect(out: str | Path, rungs: list[str] | tuple[str, ...]) -> dict[str, dict]:
    """rung -> task -> eval result, from the files the eval stages wrote."""
    found: dict[str, dict] = {}
    for rung in rungs:
        for task in ("trade", "route"):
            path = Path(out) / EVAL_DIR / f"{rung}-{task}.json"
            if path.exists():
                found.setdefault(rung, {})[task] = json.loads(path.read_text())
    return found


def table(evals: dict[str, dict], say: Callable[[str], None] = print) -> None:
    """The side-by-side summary: trade agreement (per position) beside the baselines, then routing."""
    base = next((t["trade"]["baselines"] for t in evals.values() if "trade" in t and t["trade"].get("baselines")),
                None)
    if base:
        say(f"{'baselines':12s} majority {base['majority']:.1%}   position rule {base['position_rule']:.1%}")
    for rung, tasks in evals.items():
        parts = []
        if "trade" in tasks:
            t = tasks["trade"]
            pos = "  ".join(f"{k} {v['accuracy']:.1%}" for k, v in t.get("per_position", {}).items())
            parts.append(f"agreement {t['accuracy']:.1%} on {t['n']} ({pos}; parse fail {t['parse_failure_rate']:.0%})")
        if "route" in tasks:
            r = tasks["route"]
            unsafe = sum(r.get("unsafe_trades", {}).values())
            parts.append(f"routing {r['accuracy']:.1%} on {r['n']} (intent {r.get('intent_accuracy') or 0:.1%}, "
                         f"unsafe trades {unsafe})")
        say(f"{rung:12s} " + " | ".join(parts))
