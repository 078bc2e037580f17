"""`trader finetune ...` and `trader bench llm`: argument parsing only; finetune/* does the work."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from trader_core.cli_utils import progress  # progress lines go to stderr: stdout is the result (JSON with --json)

app = typer.Typer(help="Distil the policy into an LLM: data, LoRA, fuse, GGUF, Ollama.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Strict JSON on stdout.")


@app.callback()
def _quiet() -> None:
    """Distil the policy into an LLM: data, LoRA, fuse, GGUF, Ollama."""
    from trader_core.native_logs import quiet_terminal

    quiet_terminal()  # transformers/torch/tqdm/llama.cpp chatter goes to $TRADER_HOME/logs/native.log


def _emit(result, as_json: bool, exclude: set | None = None) -> None:
    from trader_core.cli_utils import console, print_json

    if as_json:
        print_json(result.model_dump(exclude=exclude))
    else:
        console().print_json(result.model_dump_json(exclude=exclude))


@app.command("distill")
def distill_cmd(
    run: str = typer.Option("default", help="Policy run directory, or 'default' (bundled policy)."),
    data: str = typer.Option("chainlink-eth-1h", help="Dataset name or candle CSV."),
    episodes: int = typer.Option(200, help="Rollout episodes."),
    steps: int = typer.Option(100, help="Steps per episode."),
    seed: int = typer.Option(0, help="Seed (rollout starts and class balancing)."),
    balance: bool = typer.Option(True, help="Balance actions by sampling states (never relabelling)."),
    max_ratio: float = typer.Option(1.0, help="Each action keeps at most this multiple of the rarest."),
    out: str = typer.Option("runs/finetune/distill", help="Output directory."),
    as_json: bool = JSON,
) -> None:
    """Roll the trained policy over the train split; write its real decisions as prompt/response JSONL."""
    from finetune.data.distill import DistillConfig, distill
    from trader_core.config import resolve_config

    cfg = resolve_config(DistillConfig, dict(run=run, data=data, episodes=episodes, steps=steps, seed=seed,
                                             balance=balance, max_ratio=max_ratio, out=out))
    _emit(distill(cfg), as_json)


@app.command("teacher")
def teacher_cmd(
    llm: str = typer.Option(..., help="openai:MODEL | ollama:MODEL | gguf:PATH"),
    n: int = typer.Option(100, help="Prompts to ask."),
    prompts: str = typer.Option("runs/finetune/distill/distill.jsonl", help="distill.jsonl to take prompts from."),
    out: str = typer.Option("runs/finetune/teacher", help="Output directory."),
    as_json: bool = JSON,
) -> None:
    """Chain-of-draft answers from a larger model; malformed replies are counted and skipped."""
    from finetune.data.teacher import TeacherConfig, run_teacher
    from trader_core.config import resolve_config

    _emit(run_teacher(resolve_config(TeacherConfig, dict(llm=llm, n=n, prompts=prompts, out=out))), as_json)


@app.command("prepare")
def prepare_cmd(
    inputs: list[str] = typer.Option(["runs/finetune/distill/distill.jsonl"], "--input", help="Record JSONL (repeatable)."),
    out: str = typer.Option("runs/finetune/data/rl", help="Output folder (train/valid/test.jsonl)."),
    valid_frac: float = typer.Option(0.1, help="Share of timestamps for validation."),
    test_frac: float = typer.Option(0.1, help="Share of the latest timestamps held out."),
    as_json: bool = JSON,
) -> None:
    """Chat-format train/valid/test JSONL split by time, with a stats report."""
    from finetune.data.dataset import PrepareConfig, prepare
    from trader_core.config import resolve_config

    cfg = resolve_config(PrepareConfig, dict(inputs=inputs, out=out, valid_frac=valid_frac, test_frac=test_frac))
    _emit(prepare(cfg), as_json)


@app.command("lora")
def lora_cmd(
    config: Optional[str] = typer.Option(None, "--config", "-c", help="mlx-lm style YAML (finetune/configs/*.yaml)."),
    model: Optional[str] = typer.Option(None, help="Base model (overrides the YAML)."),
    data: Optional[str] = typer.Option(None, help="Folder with train/valid.jsonl."),
    adapter_path: Optional[str] = typer.Option(None, help="Where adapters go."),
    resume_adapter_file: Optional[str] = typer.Option(None, help="Stage-1 adapter to resume."),
    iters: Optional[int] = typer.Option(None, help="Training iterations."),
    batch_size: Optional[int] = typer.Option(None),
    learning_rate: Optional[float] = typer.Option(None),
    backend: Optional[str] = typer.Option(None, help="auto | mlx | peft"),
    as_json: bool = JSON,
) -> None:
    """LoRA fine-tune (MLX or PEFT, same YAML); writes adapter_config.json beside the adapters."""
    from finetune.train.lora import load_lora_config, train_lora

    cfg = load_lora_config(config, model=model, data=data, adapter_path=adapter_path,
                           resume_adapter_file=resume_adapter_file, iters=iters, batch_size=batch_size,
                           learning_rate=learning_rate, backend=backend)
    _emit(train_lora(cfg), as_json)


@app.command("fuse")
def fuse_cmd(
    adapter_path: str = typer.Option("runs/finetune/adapters/stage2", help="Adapter folder from `lora`."),
    save_path: str = typer.Option("runs/finetune/fused", help="Output Hugging Face folder."),
    dtype: str = typer.Option("float16", help="float16 | bfloat16 | float32"),
    as_json: bool = JSON,
) -> None:
    """Merge the adapter into the base model (float16 HF folder with tokenizer and chat template)."""
    from finetune.convert.export import FuseConfig, fuse
    from trader_core.config import resolve_config

    _emit(fuse(resolve_config(FuseConfig, dict(adapter_path=adapter_path, save_path=save_path, dtype=dtype))), as_json)


@app.command("gguf")
def gguf_cmd(
    model: str = typer.Option("runs/finetune/fused", help="Hugging Face folder (from fuse)."),
    out: str = typer.Option("runs/finetune/gguf", help="Output folder."),
    outtype: str = typer.Option("f16", help="f16 | bf16 | f32 | q8_0"),
    as_json: bool = JSON,
) -> None:
    """llama.cpp's convert_hf_to_gguf.py -> model-f16.gguf."""
    from finetune.convert.export import GgufConfig, convert_to_gguf
    from trader_core.config import resolve_config

    _emit(convert_to_gguf(resolve_config(GgufConfig, dict(model=model, out=out, outtype=outtype))), as_json)


@app.command("quantize")
def quantize_cmd(
    gguf: str = typer.Option("runs/finetune/gguf/model-f16.gguf", help="Input GGUF."),
    quant: str = typer.Option("q4_k_m", help="q4_k_m | q5_k_m | q8_0 | q4_0"),
    out: Optional[str] = typer.Option(None, help="Output file (default: beside the input)."),
    as_json: bool = JSON,
) -> None:
    """Quantize a GGUF with llama.cpp (through llama-cpp-python)."""
    from finetune.convert.export import QuantizeConfig, quantize
    from trader_core.config import resolve_config

    _emit(quantize(resolve_config(QuantizeConfig, dict(gguf=gguf, quant=quant, out=out))), as_json)


@app.command("ollama")
def ollama_cmd(
    gguf: Optional[str] = typer.Option(None, help="Quantized GGUF (default: the built trader-qwen-rl, base + "
                                                  "GGUF LoRA as FROM + ADAPTER)."),
    adapter: Optional[str] = typer.Option(None, help="GGUF LoRA to apply on top of --gguf (Modelfile ADAPTER)."),
    name: Optional[str] = typer.Option(None, help="Ollama model name (default: trader-qwen-rl)."),
    base_name: str = typer.Option("Qwen2.5-Coder-0.5B-Instruct", help="The real base, said in the Modelfile."),
    out: Optional[str] = typer.Option(None, help="Folder for the Modelfile (default: beside the GGUF)."),
    as_json: bool = JSON,
) -> None:
    """Write the Modelfile (Qwen's template with tools, stop tokens); register it when Ollama answers, else
    print the `ollama create` command."""
    from finetune.llm_backends.ollama_export import OllamaConfig, write_modelfile
    from trader_core.config import resolve_config

    if gguf is None:
        from finetune.convert.trader_model import MODEL_NAME, ensure_trader_model

        built = ensure_trader_model(report=progress)
        gguf, adapter, name = built.gguf, built.lora, name or MODEL_NAME
        out = out or str(Path(built.lora or built.gguf).parent)  # the build's folder, not the shared base's
    result = write_modelfile(resolve_config(OllamaConfig, dict(gguf=gguf, adapter=adapter, name=name,
                                                               base_name=base_name, out=out)))
    if as_json:
        _emit(result, True)
    else:
        print(f"wrote {result.modelfile}\n{result.message}")


@app.command("eval")
def eval_cmd(
    model: Optional[str] = typer.Option(None, help="gguf:PATH[+LORA.gguf] | hf:DIR | ollama:NAME | openai:MODEL | "
                                                   "default (exactly the trader model the agent uses)."),
    data: Optional[str] = typer.Option(None, help="Held-out chat JSONL (trading states or routing phrasings); "
                                                  "default: RUN/heldout/heldout.jsonl."),
    baseline: Optional[str] = typer.Option(None, help="A second model (e.g. the base) on the same records."),
    limit: Optional[int] = typer.Option(None, help="N records spread evenly over the file."),
    ladder: bool = typer.Option(False, "--ladder", help="Every rung of RUN's export ladder (base, fused HF, f16, "
                                                        "q4_k_m, GGUF LoRA) on its held-out states and phrasings."),
    run: str = typer.Option("runs/finetune", help="Pipeline folder (`trader finetune all --out`) for --ladder."),
    as_written: bool = typer.Option(False, "--as-written", help="Routing: constrain each plan call to the numbers, "
                                    "assets and sides its message writes, as the agent does (gguf: models)."),
    as_json: bool = JSON,
) -> None:
    """Agreement with the policy (per position, beside the majority and position-rule baselines), or routing
    accuracy and unsafe trades for phrasing records."""
    from finetune.evaluation.evaluate import EvalConfig, evaluate
    from trader_core.cli_utils import print_json
    from trader_core.config import resolve_config
    from trader_core.errors import ConfigError

    if ladder:
        from finetune.evaluation.ladder import table
        from finetune.pipeline import PipelineConfig, run_pipeline
        from trader_core.config import load_config

        cfg = load_config(PipelineConfig, run, "pipeline_config.json")
        cfg = cfg.model_copy(update={"eval_limit": limit or cfg.eval_limit or 50})
        result = run_pipeline(cfg, report=progress)
        if as_json:
            print_json(result.eval)
        else:
            table(result.eval)
        return
    if model is None:
        raise ConfigError("--model is needed (or --ladder): e.g. --model default, --model gguf:PATH")
    data = data or f"{run}/heldout/heldout.jsonl"
    opts = dict(data=data, limit=limit, as_written=as_written)
    results = [evaluate(resolve_config(EvalConfig, dict(model=model, **opts)), report=progress)]
    if baseline:
        results.append(evaluate(resolve_config(EvalConfig, dict(model=baseline, **opts)), report=progress))
    if as_json:
        keys = ("accuracy", "parse_failure_rate", "n", "task")
        extra = ("confusion", "per_position", "baselines") if results[0].task == "trade" else \
            ("intent_accuracy", "per_category", "unsafe_trades")
        doc = {k: getattr(results[0], k) for k in keys + extra}
        doc["model"] = results[0].model
        if baseline:
            doc["baseline"] = {k: getattr(results[1], k) for k in keys + extra}
        print_json(doc)
        return
    for r in results:
        if r.task == "trade":
            pos = ", ".join(f"{k} {v['accuracy']:.1%} (n={int(v['n'])})" for k, v in r.per_position.items())
            print(f"{r.model}: agreement {r.accuracy:.1%} on {r.n} states ({pos}), parse failures "
                  f"{r.parse_failure_rate:.1%}; baselines: majority {r.baselines['majority']:.1%}, "
                  f"position rule {r.baselines['position_rule']:.1%}")
            for label, row in r.confusion.items():
                print(f"  policy {label:4s} -> " + "  ".join(f"{k} {v}" for k, v in row.items()))
        else:
            print(f"{r.model}: routing {r.accuracy:.1%} on {r.n} phrasings (intent {r.intent_accuracy:.1%}), "
                  f"parse failures {r.parse_failure_rate:.1%}, trades planned from unsafe messages: "
                  f"{sum(r.unsafe_trades.values())} {r.unsafe_trades or ''}")


@app.command("model")
def model_cmd(
    method: str = typer.Option("lora", help="lora (GGUF LoRA on the q4 base) | fused (fuse -> GGUF -> q4_k_m)"),
    adapter: Optional[str] = typer.Option(None, help="Adapter folder (default: the shipped trader-qwen-rl)."),
    as_json: bool = JSON,
) -> None:
    """Build (once, cached) trader-qwen-rl from the embedded Qwen and the shipped adapter; print where it is."""
    from finetune.convert.trader_model import ensure_trader_model
    from trader_core.errors import ConfigError

    if method not in ("lora", "fused"):
        raise ConfigError(f"--method {method!r}: use lora or fused")
    from finetune.convert.trader_model import SHIPPED_ADAPTER
    from finetune.provenance import check_teacher
    from trader_core.errors import ModelError

    model = ensure_trader_model(method, adapter=adapter, report=progress)
    try:
        teacher = check_teacher(adapter or SHIPPED_ADAPTER)
        teacher_line = teacher.message
    except ModelError as exc:  # an adapter of the user's own, with no (valid) record: the model still works
        teacher, teacher_line = None, f"teacher unknown: {exc}"
    if as_json:
        from trader_core.cli_utils import print_json

        print_json({**model.model_dump(mode="json"), "teacher": teacher.model_dump(mode="json") if teacher else None})
        if teacher is None:
            progress(teacher_line)
    else:
        print(f"{model.label}\n  gguf: {model.gguf}" + (f"\n  lora: {model.lora}" if model.lora else "")
              + f"\n  spec: {model.spec}\n  {teacher_line}")


@app.command("all")
def all_cmd(
    base: str = typer.Option("smollm2-135m", help="Base model: smollm2-135m (fast), qwen2.5-coder-0.5b (embedded "
                                                  "Qwen, the trader-qwen-rl recipe), a HF folder, or a hub id."),
    policy: str = typer.Option("default", help="Policy run directory or 'default'."),
    data: str = typer.Option("chainlink-eth-1h", help="Dataset for the rollouts."),
    out: str = typer.Option("runs/finetune", help="Root folder of every artifact."),
    episodes: int = typer.Option(1000, help="Rollout episodes (distinct states kept once)."),
    steps: int = typer.Option(100),
    teacher: Optional[str] = typer.Option(None, help="openai:MODEL | ollama:MODEL for stage-1 data."),
    teacher_n: int = typer.Option(100),
    config: Optional[str] = typer.Option(None, help="LoRA YAML for the RL stage (default: by base)."),
    iters: Optional[int] = typer.Option(None, help="Override LoRA iterations."),
    backend: Optional[str] = typer.Option(None, help="auto | mlx | peft"),
    name: Optional[str] = typer.Option(None, help="Ollama model name (default says the base)."),
    route_n: Optional[int] = typer.Option(None, help="Routing phrasings (default 400 for a tool-calling base)."),
    eval_limit: int = typer.Option(50, help="Held-out states evaluated per rung (0 = skip eval)."),
    route_eval_limit: int = typer.Option(100, help="Held-out phrasings evaluated per rung."),
    ladder: Optional[str] = typer.Option(None, help="Comma-separated rungs (default: base,hf,f16,q4_k_m,gguf_lora)."),
    ship: bool = typer.Option(False, "--ship", help="Copy the adapter and its eval report into "
                                                    "finetune/adapters/trader-qwen-rl (the model every install builds)."),
    as_json: bool = JSON,
) -> None:
    """The whole chain in one command; a stage is skipped only when its inputs' content is unchanged."""
    from finetune.pipeline import PipelineConfig, run_pipeline
    from trader_core.config import resolve_config

    cfg = resolve_config(PipelineConfig, dict(
        base=base, policy=policy, data=data, out=out, episodes=episodes, steps=steps, teacher=teacher,
        teacher_n=teacher_n, config=config, iters=iters, backend=backend, name=name, route_n=route_n,
        eval_limit=eval_limit, route_eval_limit=route_eval_limit,
        ladder=[r.strip() for r in ladder.split(",") if r.strip()] if ladder else None))
    result = run_pipeline(cfg, report=progress)
    if ship:
        from finetune.base_models.sources import is_qwen
        from finetune.convert.trader_model import ship_adapter
        from trader_core.errors import ConfigError

        if not is_qwen(cfg.base):
            raise ConfigError("--ship is for the trader-qwen-rl recipe: use --base qwen2.5-coder-0.5b")
        command = "trader finetune all " + " ".join(sys.argv[sys.argv.index("all") + 1:]) if "all" in sys.argv \
            else "trader finetune all --base qwen2.5-coder-0.5b --ship"
        where = ship_adapter(result.artifacts["adapters"], {"pipeline": cfg.model_dump(mode="json"),
                                                            "stages_s": result.stages_s, "eval": result.eval}, command)
        from finetune.base_models.store import QWEN_Q4
        from finetune.convert.trader_model import BASE_LABEL
        from finetune.pipeline import default_yaml
        from finetune.provenance import write_provenance
        from rl.policy import resolve_members

        write_provenance(where, policy=cfg.policy, base=f"{BASE_LABEL} Q4_K_M (embedded)", base_sha256=QWEN_Q4.sha256,
                         teacher_policy=f"{cfg.policy} policy ({resolve_members(cfg.policy)[0].name}) when shipped",
                         recipe=cfg.config or default_yaml(cfg.base), data_recipe=command)
        progress(f"shipped the adapter, its eval report and provenance to {where}")
    if as_json:
        _emit(result, True)
        return
    from finetune.evaluation.ladder import table

    print("stage times: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.stages_s.items()))
    table(result.eval)
    print(f"model: {result.artifacts['gguf_quant']}\nModelfile: {result.artifacts['modelfile']}")


def bench_llm(
    prompts: int = typer.Option(4, help="Prompts generated by each runtime."),
    max_tokens: int = typer.Option(64, help="Tokens generated per prompt."),
    threads: Optional[int] = typer.Option(None, help="Threads for both runtimes (default: TRADER_LLM_THREADS or all)."),
    builds: bool = typer.Option(False, "--builds", help="Also build trader-qwen-rl both ways (GGUF LoRA at load, "
                                                        "fused q4_k_m) in fresh folders: setup seconds, tokens/s."),
    as_json: bool = JSON,
) -> None:
    """Embedded Qwen tokens/s: q4_k_m and f16 GGUF (llama.cpp), f16 (transformers); the build's CPU features."""
    from finetune.bench import compare_builds, run_bench
    from trader_core.cli_utils import print_json

    res = run_bench(prompts=prompts, max_tokens=max_tokens, threads=threads, report=progress)
    if builds:
        res["trader_builds"] = compare_builds(prompts=prompts, max_tokens=max_tokens, threads=threads,
                                              report=progress)
    if as_json:
        print_json(res)
        return
    print(f"{res['model']}, {res['threads']} thread(s): q4_k_m {res['q4_k_m_tokens_per_s']:.1f} tok/s, "
          f"f16 GGUF {res['f16_tokens_per_s']:.1f} tok/s ({res['q4_vs_f16']:.1f}x, target >= 2x), "
          f"transformers f16 {res['hf_f16_tokens_per_s']:.1f} tok/s ({res['q4_vs_hf_f16']:.1f}x, target >= 3x)")
    print(f"llama.cpp {res['llama_cpp']['version']}: {', '.join(res['llama_cpp']['features'])}")
    for method, b in (res.get("trader_builds") or {}).items():
        if isinstance(b, dict):
            print(f"trader-qwen-rl {method}: setup {b['setup_s']:.0f} s, {b['tokens_per_s']:.1f} tok/s, "
                  f"{b['files_mb']:.0f} MB")


bench_commands: dict = {"llm": bench_llm}
