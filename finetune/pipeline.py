"""`trader finetune all`: distill -> (teacher) -> prepare -> LoRA (1-2 stages) -> fuse -> GGUF -> quantize
-> Modelfile -> eval, in one command. Each stage skips itself when its output exists and was made by
the same resolved config, so a re-run after a crash (or with one setting changed) redoes only what
changed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, Field

from finetune import dataset, distill, export, lora
from finetune.artifacts import config_matches
from finetune.models import SMALL_MODEL
from trader_core.config import save_config
from trader_core.market_data import DEFAULT_DATASET

CONFIGS_DIR = Path(__file__).parent / "configs"


class PipelineConfig(BaseModel):
    base: str = Field(SMALL_MODEL, description="Base model: 'smollm2-135m', a HF folder, or a hub id (Qwen/Qwen2.5-3B).")
    policy: str = Field("default", description="Policy run directory or 'default'.")
    data: str = Field(DEFAULT_DATASET, description="Market dataset for the rollouts.")
    out: str = Field("runs/finetune", description="Root folder of every artifact.")
    episodes: int = 200
    steps: int = 100
    seed: int = 0
    teacher: str | None = Field(None, description="openai:MODEL | ollama:MODEL for stage-1 data (optional).")
    teacher_n: int = 100
    config: str | None = Field(None, description="LoRA YAML for the RL stage (default: by base model).")
    stage1_config: str | None = Field(None, description="LoRA YAML for stage 1 (default: by base model).")
    iters: int | None = Field(None, description="Override the YAML's iters (both stages).")
    backend: str | None = Field(None, description="auto | mlx | peft (override the YAML).")
    quant: str = "q4_k_m"
    name: str = "trader-qwen-rl"
    eval_limit: int = Field(50, ge=0, description="Test states to evaluate (0 = skip eval).")


class PipelineResult(BaseModel):
    stages_s: dict[str, float]
    skipped: list[str]
    artifacts: dict[str, str]
    eval: dict[str, dict] = Field(default_factory=dict)


def _lora_config(file: str, cfg: PipelineConfig, data: Path, adapters: Path, resume: Path | None) -> lora.LoraConfig:
    overrides = {"model": cfg.base, "data": str(data), "adapter_path": str(adapters), "iters": cfg.iters,
                 "backend": cfg.backend, "seed": cfg.seed,
                 "resume_adapter_file": str(resume) if resume else None}
    conf = lora.load_lora_config(file, **overrides)
    if resume is None:
        conf = conf.model_copy(update={"resume_adapter_file": None})
    if cfg.iters and conf.lr_schedule and conf.lr_schedule.get("arguments"):  # keep the decay matched to iters
        args = list(conf.lr_schedule["arguments"])
        args[1] = cfg.iters
        conf = conf.model_copy(update={"lr_schedule": {**conf.lr_schedule, "arguments": args}})
    return conf


def run_pipeline(cfg: PipelineConfig, report: Callable[[str], None] = print) -> PipelineResult:
    """Run every stage in order, skipping valid finished ones; returns per-stage wall times."""
    root = Path(cfg.out)
    small = cfg.base.lower().startswith("smollm2")
    rl_yaml = cfg.config or str(CONFIGS_DIR / ("smollm2.yaml" if small else "stage2_rl.yaml"))
    d_cfg = distill.DistillConfig(run=cfg.policy, data=cfg.data, episodes=cfg.episodes, steps=cfg.steps,
                                  seed=cfg.seed, out=str(root / "distill"))
    rl_data = dataset.PrepareConfig(inputs=[str(root / "distill" / distill.OUTPUT)], out=str(root / "data" / "rl"))
    stage1 = None
    plan: list[tuple[str, Callable[[], object], Callable[[], bool]]] = [
        ("distill", lambda: distill.distill(d_cfg), lambda: distill.is_done(d_cfg))]
    if cfg.teacher:
        from finetune import teacher

        t_cfg = teacher.TeacherConfig(llm=cfg.teacher, n=cfg.teacher_n, prompts=str(root / "distill" / distill.OUTPUT),
                                      out=str(root / "teacher"), seed=cfg.seed)
        t_data = dataset.PrepareConfig(inputs=[str(root / "teacher" / teacher.OUTPUT)],
                                       out=str(root / "data" / "teacher"))
        # stage 2 resumes stage 1, so both share one shape: the small model uses its own YAML for both
        s1_yaml = cfg.stage1_config or (rl_yaml if small else str(CONFIGS_DIR / "stage1_teacher.yaml"))
        stage1 = _lora_config(s1_yaml, cfg, Path(t_data.out), root / "adapters" / "stage1", None)
        plan += [("teacher", lambda: teacher.run_teacher(t_cfg),
                  lambda: (Path(t_cfg.out) / teacher.OUTPUT).exists()
                  and config_matches(t_cfg.out, teacher.CONFIG, t_cfg)),
                 ("prepare_teacher", lambda: dataset.prepare(t_data), lambda: dataset.is_done(t_data)),
                 ("lora_stage1", lambda: lora.train_lora(stage1), lambda: lora.is_done(stage1))]
    stage2 = _lora_config(rl_yaml, cfg, Path(rl_data.out), root / "adapters" / "stage2",
                          Path(stage1.adapter_path) if stage1 else None)
    f_cfg = export.FuseConfig(adapter_path=stage2.adapter_path, save_path=str(root / "fused"))
    g_cfg = export.GgufConfig(model=f_cfg.save_path, out=str(root / "gguf"))
    q_cfg = export.QuantizeConfig(gguf=str(export.gguf_path(g_cfg)), quant=cfg.quant)
    plan += [("prepare", lambda: dataset.prepare(rl_data), lambda: dataset.is_done(rl_data)),
             ("lora", lambda: lora.train_lora(stage2), lambda: lora.is_done(stage2)),
             ("fuse", lambda: export.fuse(f_cfg), lambda: export.fuse_done(f_cfg)),
             ("gguf", lambda: export.convert_to_gguf(g_cfg), lambda: export.gguf_done(g_cfg)),
             ("quantize", lambda: export.quantize(q_cfg), lambda: export.quantize_done(q_cfg))]
    from finetune.ollama_export import OllamaConfig, write_modelfile

    o_cfg = OllamaConfig(gguf=str(export.quantized_path(q_cfg)), name=cfg.name)
    plan.append(("ollama", lambda: write_modelfile(o_cfg), lambda: False))
    result = PipelineResult(stages_s={}, skipped=[], artifacts={
        "distill": str(Path(d_cfg.out) / distill.OUTPUT), "data": rl_data.out, "adapters": stage2.adapter_path,
        "fused": f_cfg.save_path, "gguf_f16": str(export.gguf_path(g_cfg)),
        "gguf_quant": str(export.quantized_path(q_cfg)), "modelfile": str(Path(o_cfg.gguf).parent / "Modelfile")})
    if cfg.eval_limit:
        plan += _eval_plan(cfg, root, result)
    for i, (name, run, done) in enumerate(plan, 1):
        if done():
            result.skipped.append(name)
            report(f"[{i}/{len(plan)}] {name}: already done, skipped")
            continue
        report(f"[{i}/{len(plan)}] {name} ...")
        t0 = time.perf_counter()
        out = run()
        result.stages_s[name] = round(time.perf_counter() - t0, 2)
        report(f"[{i}/{len(plan)}] {name}: {result.stages_s[name]:.1f} s" + _summary(out))
    save_config(cfg, root, "pipeline_config.json")
    (root / "pipeline_result.json").write_text(result.model_dump_json(indent=2) + "\n")
    return result


def _summary(out: object) -> str:
    for key in ("n", "path", "message"):
        if hasattr(out, key):
            return f" ({key}: {getattr(out, key)})"
    return ""


def _eval_plan(cfg: PipelineConfig, root: Path, result: PipelineResult) -> list:
    """Base model through the same GGUF path, then both evaluated on the same held-out states."""
    from finetune.evaluate import EvalConfig, evaluate
    from finetune.models import local_model_dir

    test = str(Path(result.artifacts["data"]) / "test.jsonl")
    bg_cfg = export.GgufConfig(model="", out=str(root / "base-gguf"))

    def base_gguf():
        bg = bg_cfg.model_copy(update={"model": str(local_model_dir(cfg.base))})
        export.convert_to_gguf(bg)
        q = export.QuantizeConfig(gguf=str(export.gguf_path(bg)), quant=cfg.quant)
        return export.quantize(q)

    def base_done() -> bool:
        q = export.QuantizeConfig(gguf=str(export.gguf_path(bg_cfg)), quant=cfg.quant)
        return export.quantized_path(q).exists()

    def run_eval(key: str, gguf: str):
        res = evaluate(EvalConfig(model=f"gguf:{gguf}", data=test, limit=cfg.eval_limit))
        result.eval[key] = res.model_dump()
        return res

    base_q = str(export.quantized_path(export.QuantizeConfig(gguf=str(export.gguf_path(bg_cfg)), quant=cfg.quant)))
    return [("base_gguf", base_gguf, base_done),
            ("eval_fine_tuned", lambda: run_eval("fine_tuned", result.artifacts["gguf_quant"]), lambda: False),
            ("eval_base", lambda: run_eval("base", base_q), lambda: False)]
