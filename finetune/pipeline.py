"""`trader finetune all`: distill -> (teacher) -> prepare (+ routing phrasings) -> LoRA (1-2 stages) -> fuse ->
GGUF -> quantize (+ GGUF LoRA) -> Modelfile -> eval at every rung of the ladder, in one command.

Every stage is keyed by a content hash of its inputs (`finetune.artifacts.stage_key`): its resolved config,
the files it reads (policy, market data, base model, generator code) and the keys of the stages it builds on.
A finished stage whose key is unchanged is skipped, so a re-run after a crash redoes nothing twice, and a
change anywhere (`--episodes`, `--base`, a retrained policy) redoes exactly the stages downstream of it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, Field

from finetune.convert import export
from finetune.train import lora
from finetune.data import dataset
from finetune.data import distill
from finetune.artifacts import content_digest, read_key, stage_key, write_key
from finetune.base_models.sources import QWEN_MODEL, SMALL_MODEL
from trader_core.cli_utils import progress
from trader_core.config import save_config
from trader_core.market_data import DEFAULT_DATASET

CONFIGS_DIR = Path(__file__).parent / "configs"
RUNGS = ("base", "hf", "f16", "q4_k_m", "gguf_lora")


class PipelineConfig(BaseModel):
    base: str = Field(SMALL_MODEL, description=f"Base model: '{SMALL_MODEL}', '{QWEN_MODEL}' (embedded), a HF "
                                               "folder, or a hub id.")
    policy: str = Field("default", description="Policy run directory or 'default'.")
    data: str = Field(DEFAULT_DATASET, description="Market dataset for the rollouts.")
    out: str = Field("runs/finetune", description="Root folder of every artifact.")
    episodes: int = Field(1000, ge=1, description="Rollout episodes (distinct states are kept once).")
    steps: int = Field(100, ge=1)
    seed: int = 0
    teacher: str | None = Field(None, description="openai:MODEL | ollama:MODEL for stage-1 data (optional).")
    teacher_n: int = 100
    config: str | None = Field(None, description="LoRA YAML for the RL stage (default: by base model).")
    stage1_config: str | None = Field(None, description="LoRA YAML for stage 1 (default: by base model).")
    iters: int | None = Field(None, description="Override the YAML's iters (both stages).")
    backend: str | None = Field(None, description="auto | mlx | peft (override the YAML).")
    quant: str = "q4_k_m"
    name: str | None = Field(None, description="Ollama model name; default says the base: trader-qwen-rl, "
                                               "trader-smollm2-rl, trader-<folder>-rl.")
    route_n: int | None = Field(None, ge=0, description="Routing phrasings to train on (the plan tool call); "
                                                        "default 400 when the base's chat template has tools.")
    trade_repeat: int = Field(2, ge=1, description="Times each trading record appears in the LoRA's data.")
    heldout_split: str = Field("test", description="The policy's split the held-out states come from.")
    heldout_episodes: int = Field(400, ge=1)
    heldout_per_action: int = Field(111, ge=1, description="Held-out states per action (class-balanced).")
    eval_limit: int = Field(50, ge=0, description="Held-out states evaluated per rung (0 = skip eval).")
    route_eval_limit: int = Field(100, ge=0, description="Held-out phrasings evaluated per rung.")
    ladder: list[str] = Field(list(RUNGS), description=f"Rungs to evaluate: {', '.join(RUNGS)}.")


class PipelineResult(BaseModel):
    stages_s: dict[str, float]
    skipped: list[str]
    artifacts: dict[str, str]
    eval: dict[str, dict] = Field(default_factory=dict, description="rung -> task -> EvalResult")


class Stage(BaseModel):
    """One step of the plan: `run` makes `outputs`; skipped when they exist and `key` is unchanged."""

    model_config = {"arbitrary_types_allowed": True}
    name: str
    run: Callable[[], object]
    outputs: list[str]
    key: str


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


def base_digest(name: str) -> str:
    """Content identity of a base model: the embedded ones by their GGUF, a folder by its files."""
    from finetune.base_models.store import QWEN_Q4
    from finetune.base_models.sources import is_qwen, is_small, smollm2_gguf

    if is_qwen(name):
        return QWEN_Q4.sha256  # verified against this hash when assembled
    if is_small(name):
        return content_digest(smollm2_gguf())
    path = Path(name).expanduser()
    return content_digest(path) if path.is_dir() else f"hub:{name}"


def route_count(cfg: PipelineConfig) -> int:
    if cfg.route_n is not None:
        return cfg.route_n
    from finetune.base_models.sources import template_has_tools

    return 400 if template_has_tools(cfg.base) else 0


def default_yaml(base: str) -> str:
    from finetune.base_models.sources import is_qwen, is_small

    name = "smollm2.yaml" if is_small(base) else "qwen_trader.yaml" if is_qwen(base) else "stage2_rl.yaml"
    return str(CONFIGS_DIR / name)


def plan_stages(cfg: PipelineConfig, result: PipelineResult) -> list[Stage]:
    """Every stage with its key, in order (eval stages appended by `finetune.evaluation.ladder`)."""
    from finetune import plan_call
    from finetune.data import routing
    from finetune.base_models.sources import base_gguf as embedded_gguf
    from rl.policy import policy_digest
    from trader_core.market_data import resolve_dataset

    root = Path(cfg.out)
    rl_yaml = cfg.config or default_yaml(cfg.base)
    policy_d = policy_digest(cfg.policy)  # every member's weights and recipe, not the run's reports
    data_d = content_digest(resolve_dataset(cfg.data)[0])
    base_d = base_digest(cfg.base)
    code_d = stage_key({}, *(content_digest(Path(m.__file__)) for m in (distill, dataset, routing)))
    stages: list[Stage] = []

    d_cfg = distill.DistillConfig(run=cfg.policy, data=cfg.data, episodes=cfg.episodes, steps=cfg.steps,
                                  seed=cfg.seed, out=str(root / "distill"))
    distill_key = stage_key(d_cfg, policy_d, data_d, code_d)
    stages.append(Stage(name="distill", run=lambda: distill.distill(d_cfg), key=distill_key,
                        outputs=[str(root / "distill" / distill.OUTPUT)]))
    stage1, stage1_key = None, ""
    if cfg.teacher:
        from finetune.data import teacher

        t_cfg = teacher.TeacherConfig(llm=cfg.teacher, n=cfg.teacher_n, prompts=str(root / "distill" / distill.OUTPUT),
                                      out=str(root / "teacher"), seed=cfg.seed)
        t_data = dataset.PrepareConfig(inputs=[str(root / "teacher" / teacher.OUTPUT)],
                                       out=str(root / "data" / "teacher"))
        # stage 2 resumes stage 1, so both share one shape: the small model uses its own YAML for both
        small = cfg.base.lower().startswith("smollm2")
        s1_yaml = cfg.stage1_config or (rl_yaml if small else str(CONFIGS_DIR / "stage1_teacher.yaml"))
        stage1 = _lora_config(s1_yaml, cfg, Path(t_data.out), root / "adapters" / "stage1", None)
        t_key = stage_key(t_cfg, distill_key)
        tp_key = stage_key(t_data, t_key, code_d)
        stage1_key = stage_key(stage1, tp_key, base_d)
        stages += [Stage(name="teacher", run=lambda: teacher.run_teacher(t_cfg), key=t_key,
                         outputs=[str(Path(t_cfg.out) / teacher.OUTPUT)]),
                   Stage(name="prepare_teacher", run=lambda: dataset.prepare(t_data), key=tp_key,
                         outputs=[str(Path(t_data.out) / "train.jsonl")]),
                   Stage(name="lora_stage1", run=lambda: lora.train_lora(stage1), key=stage1_key,
                         outputs=[stage1.adapter_path + "/" + lora.LOG])]

    rl_data = dataset.PrepareConfig(inputs=[str(root / "distill" / distill.OUTPUT)], out=str(root / "data" / "rl"))
    prep_key = stage_key(rl_data, distill_key, code_d)
    stages.append(Stage(name="prepare", run=lambda: dataset.prepare(rl_data), key=prep_key,
                        outputs=[str(Path(rl_data.out) / f"{s}.jsonl") for s in dataset.SPLITS]))
    lora_data, data_key = Path(rl_data.out), prep_key
    n_route = route_count(cfg)
    r_cfg = dataset.RouteDataConfig(n_train=max(1, n_route), seed=cfg.seed, out=str(root / "data" / "route"))
    route_key = stage_key(r_cfg, code_d, content_digest(Path(plan_call.__file__)))
    if n_route:
        m_cfg = dataset.MixConfig(inputs=[rl_data.out, r_cfg.out], repeat=[cfg.trade_repeat, 1], seed=cfg.seed,
                                  out=str(root / "data" / "mix"))
        mix_key = stage_key(m_cfg, prep_key, route_key)
        stages += [Stage(name="route_data", run=lambda: dataset.route_data(r_cfg), key=route_key,
                         outputs=[str(Path(r_cfg.out) / f"{s}.jsonl") for s in dataset.SPLITS]),
                   Stage(name="mix", run=lambda: dataset.mix(m_cfg), key=mix_key,
                         outputs=[str(Path(m_cfg.out) / f"{s}.jsonl") for s in ("train", "valid")])]
        lora_data, data_key = Path(m_cfg.out), mix_key
        result.artifacts["route_test"] = str(Path(r_cfg.out) / "test.jsonl")

    stage2 = _lora_config(rl_yaml, cfg, lora_data, root / "adapters" / "stage2",
                          Path(stage1.adapter_path) if stage1 else None)
    lora_key = stage_key(stage2, data_key, base_d, stage1_key)
    f_cfg = export.FuseConfig(adapter_path=stage2.adapter_path, save_path=str(root / "fused"))
    fuse_key = stage_key(f_cfg, lora_key, base_d)
    g_cfg = export.GgufConfig(model=f_cfg.save_path, out=str(root / "gguf"))
    gguf_key = stage_key(g_cfg, fuse_key)
    q_cfg = export.QuantizeConfig(gguf=str(export.gguf_path(g_cfg)), quant=cfg.quant)
    quant_key = stage_key(q_cfg, gguf_key)
    stages += [
        Stage(name="lora", run=lambda: lora.train_lora(stage2), key=lora_key,
              outputs=[str(Path(stage2.adapter_path) / lora.LOG)]),
        Stage(name="fuse", run=lambda: export.fuse(f_cfg), key=fuse_key,
              outputs=[str(Path(f_cfg.save_path) / "config.json")]),
        Stage(name="gguf", run=lambda: export.convert_to_gguf(g_cfg), key=gguf_key,
              outputs=[str(export.gguf_path(g_cfg))]),
        Stage(name="quantize", run=lambda: export.quantize(q_cfg), key=quant_key,
              outputs=[str(export.quantized_path(q_cfg))]),
    ]
    base_file = embedded_gguf(cfg.base, report=lambda m: None) if cfg.eval_limit else None
    if lora.pick_backend(stage2.backend) == "peft" and base_file is not None and "gguf_lora" in cfg.ladder:
        from finetune.convert.trader_model import base_config_dir

        lg_cfg = export.LoraGgufConfig(adapter_path=stage2.adapter_path, base_config=str(root / "base-config"),
                                       out=str(root / "gguf" / "lora-f16.gguf"))

        def lora_gguf():
            base_config_dir(base_file, Path(lg_cfg.base_config))
            return export.convert_lora_to_gguf(lg_cfg)

        stages.append(Stage(name="lora_gguf", run=lora_gguf, key=stage_key(lg_cfg, lora_key, base_d),
                            outputs=[lg_cfg.out]))
        result.artifacts["gguf_lora"] = lg_cfg.out
        result.artifacts["base_gguf"] = str(base_file)
    from finetune.llm_backends.ollama_export import OllamaConfig, write_modelfile

    o_cfg = OllamaConfig(gguf=str(export.quantized_path(q_cfg)), name=cfg.name or model_name(cfg.base),
                         base_name=_base_name(cfg.base))
    stages.append(Stage(name="ollama", run=lambda: write_modelfile(o_cfg), key="", outputs=[]))
    result.artifacts.update({
        "distill": str(Path(d_cfg.out) / distill.OUTPUT), "data": rl_data.out, "adapters": stage2.adapter_path,
        "fused": f_cfg.save_path, "gguf_f16": str(export.gguf_path(g_cfg)),
        "gguf_quant": str(export.quantized_path(q_cfg)), "modelfile": str(Path(o_cfg.gguf).parent / "Modelfile")})
    if cfg.eval_limit:
        from finetune.evaluation.ladder import eval_stages

        h_cfg = distill.HeldoutConfig(run=cfg.policy, data=cfg.data, split=cfg.heldout_split,
                                      episodes=cfg.heldout_episodes, steps=cfg.steps, seed=cfg.seed,
                                      per_action=cfg.heldout_per_action, out=str(root / "heldout"))
        heldout_key = stage_key(h_cfg, policy_d, data_d, code_d)
        stages.append(Stage(name="heldout", run=lambda: distill.heldout_states(h_cfg), key=heldout_key,
                            outputs=[str(Path(h_cfg.out) / distill.HELDOUT)]))
        result.artifacts["heldout"] = str(Path(h_cfg.out) / distill.HELDOUT)
        model_keys = {"base": base_d, "hf": fuse_key, "f16": gguf_key, "q4_k_m": quant_key,
                      "gguf_lora": stage_key({}, lora_key, base_d)}
        data_keys = {"trade": heldout_key, "route": route_key if n_route else ""}
        stages += eval_stages(cfg, result, model_keys, data_keys, Stage)
    return stages


def model_name(base: str) -> str:
    """The Ollama name says the real base: trader-qwen-rl only when the base is Qwen."""
    import re

    from finetune.base_models.sources import is_qwen, is_small

    if is_qwen(base):
        return "trader-qwen-rl"
    if is_small(base):
        return "trader-smollm2-rl"
    slug = re.sub(r"[^a-z0-9]+", "-", (Path(base).name or base).lower()).strip("-") or "model"
    return f"trader-{slug}-rl"


def _base_name(base: str) -> str:
    from finetune.base_models.sources import is_qwen, is_small

    if is_qwen(base):
        return "Qwen2.5-Coder-0.5B-Instruct"
    if is_small(base):
        return "SmolLM2-135M-Instruct"
    return Path(base).name or base


def is_fresh(stage: Stage, root: Path) -> bool:
    """Outputs exist and were made from inputs with the same content (an empty key always re-runs)."""
    return bool(stage.key) and read_key(root, stage.name) == stage.key and all(Path(o).exists() for o in stage.outputs)


def stale_stages(cfg: PipelineConfig) -> list[str]:
    """The stages a run of `cfg` would do (outputs missing, or an input changed), without running any."""
    stages = plan_stages(cfg, PipelineResult(stages_s={}, skipped=[], artifacts={}))
    return [s.name for s in stages if not is_fresh(s, Path(cfg.out))]


def run_pipeline(cfg: PipelineConfig, report: Callable[[str], None] = progress) -> PipelineResult:
    """Run every stage in order, skipping finished ones whose key is unchanged; returns per-stage wall times."""
    root = Path(cfg.out)
    result = PipelineResult(stages_s={}, skipped=[], artifacts={})
    stages = plan_stages(cfg, result)
    for i, stage in enumerate(stages, 1):
        if is_fresh(stage, root):
            result.skipped.append(stage.name)
            report(f"[{i}/{len(stages)}] {stage.name}: up to date, skipped")
            continue
        report(f"[{i}/{len(stages)}] {stage.name} ...")
        t0 = time.perf_counter()
        out = stage.run()
        result.stages_s[stage.name] = round(time.perf_counter() - t0, 2)
        if stage.key:
            write_key(root, stage.name, stage.key)
        report(f"[{i}/{len(stages)}] {stage.name}: {result.stages_s[stage.name]:.1f} s" + _summary(out))
    if cfg.eval_limit:
        from finetune.evaluation.ladder import collect

        result.eval = collect(root, cfg.ladder)
    save_config(cfg, root, "pipeline_config.json")
    (root / "pipeline_result.json").write_text(result.model_dump_json(indent=2) + "\n")
    return result


def _summary(out: object) -> str:
    for key in ("accuracy", "n", "path", "message"):
        if hasattr(out, key):
            return f" ({key}: {getattr(out, key)})"
    return ""
