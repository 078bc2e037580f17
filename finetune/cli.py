"""`trader finetune ...` and `trader bench llm`: argument parsing only; finetune/* does the work."""

from __future__ import annotations

import sys
from typing import Optional

import typer

app = typer.Typer(help="Distil the policy into an LLM: data, LoRA, fuse, GGUF, Ollama.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Strict JSON on stdout.")


def _emit(result, as_json: bool, exclude: set | None = None) -> None:
    from trader_core.cli_utils import console, print_json

    if as_json:
        print_json(result.model_dump(exclude=exclude))
    else:
        console().print_json(result.model_dump_json(exclude=exclude))


def _say(as_json: bool):
    # progress goes to stderr in --json mode so stdout stays one JSON document
    return (lambda msg: print(msg, file=sys.stderr)) if as_json else print


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
    from finetune.distill import DistillConfig, distill
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
    from finetune.teacher import TeacherConfig, run_teacher
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
    from finetune.dataset import PrepareConfig, prepare
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
    from finetune.lora import load_lora_config, train_lora

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
    from finetune.export import FuseConfig, fuse
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
    from finetune.export import GgufConfig, convert_to_gguf
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
    from finetune.export import QuantizeConfig, quantize
    from trader_core.config import resolve_config

    _emit(quantize(resolve_config(QuantizeConfig, dict(gguf=gguf, quant=quant, out=out))), as_json)


@app.command("ollama")
def ollama_cmd(
    gguf: str = typer.Option("runs/finetune/gguf/model-q4_k_m.gguf", help="Quantized GGUF."),
    name: str = typer.Option("trader-qwen-rl", help="Ollama model name."),
    out: Optional[str] = typer.Option(None, help="Folder for the Modelfile (default: beside the GGUF)."),
    as_json: bool = JSON,
) -> None:
    """Write the Modelfile; register it when Ollama answers, else print the `ollama create` command."""
    from finetune.ollama_export import OllamaConfig, write_modelfile
    from trader_core.config import resolve_config

    result = write_modelfile(resolve_config(OllamaConfig, dict(gguf=gguf, name=name, out=out)))
    if as_json:
        _emit(result, True)
    else:
        print(f"wrote {result.modelfile}\n{result.message}")


@app.command("eval")
def eval_cmd(
    model: str = typer.Option(..., help="gguf:PATH | ollama:NAME | hf:DIR"),
    data: str = typer.Option("runs/finetune/data/rl/test.jsonl", help="Held-out chat JSONL from prepare."),
    baseline: Optional[str] = typer.Option(None, help="A second model (e.g. the base) on the same states."),
    limit: Optional[int] = typer.Option(None, help="First N records only."),
    as_json: bool = JSON,
) -> None:
    """Agreement of the model's parsed action with the policy's label (accuracy, confusion, parse failures)."""
    from finetune.evaluate import EvalConfig, evaluate
    from trader_core.cli_utils import print_json
    from trader_core.config import resolve_config

    res = evaluate(resolve_config(EvalConfig, dict(model=model, data=data, limit=limit)))
    base = evaluate(resolve_config(EvalConfig, dict(model=baseline, data=data, limit=limit))) if baseline else None
    if as_json:
        doc = {k: getattr(res, k) for k in ("accuracy", "parse_failure_rate", "confusion", "n")}
        if base:
            doc["baseline"] = {k: getattr(base, k) for k in ("accuracy", "parse_failure_rate", "confusion", "n")}
        print_json(doc)
        return
    for r in [res] + ([base] if base else []):
        print(f"{r.model}: agreement {r.accuracy:.1%} on {r.n} states, parse failures {r.parse_failure_rate:.1%}")
        for label, row in r.confusion.items():
            print(f"  policy {label:4s} -> " + "  ".join(f"{k} {v}" for k, v in row.items()))


@app.command("all")
def all_cmd(
    base: str = typer.Option("smollm2-135m", help="Base model: smollm2-135m, a HF folder, or Qwen/Qwen2.5-3B."),
    policy: str = typer.Option("default", help="Policy run directory or 'default'."),
    data: str = typer.Option("chainlink-eth-1h", help="Dataset for the rollouts."),
    out: str = typer.Option("runs/finetune", help="Root folder of every artifact."),
    episodes: int = typer.Option(200, help="Rollout episodes."),
    steps: int = typer.Option(100),
    teacher: Optional[str] = typer.Option(None, help="openai:MODEL | ollama:MODEL for stage-1 data."),
    teacher_n: int = typer.Option(100),
    config: Optional[str] = typer.Option(None, help="LoRA YAML for the RL stage."),
    iters: Optional[int] = typer.Option(None, help="Override LoRA iterations."),
    backend: Optional[str] = typer.Option(None, help="auto | mlx | peft"),
    name: str = typer.Option("trader-qwen-rl", help="Ollama model name."),
    eval_limit: int = typer.Option(50, help="Held-out states to evaluate (0 = skip)."),
    as_json: bool = JSON,
) -> None:
    """The whole chain in one command; finished, valid stages are skipped."""
    from finetune.pipeline import PipelineConfig, run_pipeline
    from trader_core.config import resolve_config

    cfg = resolve_config(PipelineConfig, dict(base=base, policy=policy, data=data, out=out, episodes=episodes,
                                              steps=steps, teacher=teacher, teacher_n=teacher_n, config=config,
                                              iters=iters, backend=backend, name=name, eval_limit=eval_limit))
    result = run_pipeline(cfg, report=_say(as_json))
    if as_json:
        _emit(result, True)
        return
    print("stage times: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.stages_s.items()))
    for key, ev in result.eval.items():
        print(f"{key:10s} agreement {ev['accuracy']:.1%} on {ev['n']} held-out states "
              f"(parse failures {ev['parse_failure_rate']:.1%})")
    print(f"model: {result.artifacts['gguf_quant']}\nModelfile: {result.artifacts['modelfile']}")


def bench_llm(
    iters: int = typer.Option(30, help="LoRA iterations of the timed pipeline run."),
    prompts: int = typer.Option(4, help="Prompts generated by each backend."),
    max_tokens: int = typer.Option(64, help="Tokens generated per prompt."),
    out: Optional[str] = typer.Option(None, help="Work folder (default: a fresh one under TRADER_HOME/bench)."),
    as_json: bool = JSON,
) -> None:
    """q4_k_m (llama.cpp) vs f16 (transformers) generation tokens/s, and the wall time of each stage."""
    from finetune.bench import run_bench
    from trader_core.cli_utils import print_json

    res = run_bench(iters=iters, prompts=prompts, max_tokens=max_tokens, out=out, report=_say(as_json))
    if as_json:
        print_json(res)
    else:
        print(f"q4_k_m (llama.cpp): {res['q4_k_m_tokens_per_s']:.1f} tok/s   f16 (transformers): "
              f"{res['f16_tokens_per_s']:.1f} tok/s   ratio {res['ratio']:.1f}x (target >= 3x)")
        for stage, s in res["stages_s"].items():
            print(f"  {stage:16s} {s:8.1f} s")


bench_commands: dict = {"llm": bench_llm}
