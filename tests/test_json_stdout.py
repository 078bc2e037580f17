"""Every `--json` output is JSON alone on stdout: progress, notes, warnings and library output go to stderr.

Each command with a `--json` flag runs as its own process (`agent.cli.main()`, as the `trader` script runs it,
forked from `tests.cli_server` so torch and web3 are imported once), and its whole stdout must parse as one JSON
document. Commands that need the chain share one replica started from the session's replica build; the
fine-tune commands chain their real outputs on SmolLM2-135M (the session's `small_model`). The commands that
cannot run in seconds on a busy 2-core machine (building the 0.5B Qwen, a search's or the learner's worker
processes, a whole pipeline, a private Base replica, SmolLM2 turns and evaluations, which tests/agent and
tests/finetune run for real) run the real command with only that heavy function replaced by one that prints to
stdout from Python, from the file descriptor and from C, then returns a result of its real type: the JSON must
still be alone on stdout, the noise on stderr. Errors under `--json` are one line on stderr, nothing on stdout.
`test_every_json_command_is_covered` fails when a new `--json` command has no case here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import CLEAN_ENV, HANG_S, cli_server, replica_chain, seeded_home


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]  # {name} fields are filled from the group's paths
    group: str  # chain | plain | finetune: which home (and fixtures) it runs in, in this order
    stub: str | None = None  # a function of this module the child calls first (heavy commands only)
    returncode: int = 0
    id: str | None = None
    needs: str | None = None  # an optional module the command cannot run without (skipped when missing)

    @property
    def name(self) -> str:
        words = []
        for a in self.args:
            if a.startswith("-"):
                break
            words.append(a if len(a) < 12 else a[:8] + "..")
        return f"{self.group}: {self.id or ' '.join(words)}"


DEAD = "0x000000000000000000000000000000000000dEaD"
CASES = [
    # one replica chain for all of these, in this order (the swap's row is in `trades`)
    Case(("chain", "up", "--json"), "chain"),
    Case(("chain", "status", "--json"), "chain"),
    Case(("chain", "fund", DEAD, "--eth", "1", "--usdc", "10", "--json"), "chain"),
    Case(("chain", "replay", "--steps", "2", "--json"), "chain"),
    Case(("price", "--json"), "chain"),
    Case(("quote", "sell", "0.1", "ETH", "--json"), "chain"),
    Case(("swap", "sell", "0.01", "ETH", "--dry-run", "--json"), "chain", id="swap dry-run"),
    Case(("swap", "sell", "0.01", "ETH", "--yes", "--json"), "chain", id="swap yes"),
    Case(("portfolio", "--json"), "chain"),
    Case(("trades", "--json"), "chain"),
    Case(("trades", "--stats", "--json"), "chain", id="trades stats"),
    Case(("signal", "--json"), "chain"),
    Case(("run", "--iterations", "2", "--interval", "0", "--no-model", "--out", "{tmp}/run", "--json"), "chain"),
    Case(("ask", "what is the ETH price?", "--json"), "chain", stub="stub_chat_model", id="ask"),
    Case(("bench", "agent", "--turns", "2", "--llm", "none", "--json"), "chain", stub="stub_bench_agent"),
    Case(("bench", "chain", "--quotes", "3", "--swaps", "2", "--json"), "chain", stub="stub_bench_chain"),
    # no chain needed: a home of their own
    Case(("chain", "down", "--json"), "plain"),
    Case(("chain", "status", "--json"), "plain", returncode=1, id="chain status (none running)"),
    Case(("rl", "train", "--timesteps", "300", "--n-envs", "2", "--out", "{tmp}/train", "--json"), "plain"),
    Case(("rl", "backtest", "--json"), "plain"),
    Case(("rl", "signal", "--json"), "plain"),
    Case(("rl", "search", "--out", "{tmp}/search", "--trials", "1", "--json"), "plain", stub="stub_rl_search"),
    Case(("bench", "env", "--seconds", "0.1", "--json"), "plain"),
    Case(("bench", "train", "--timesteps", "100", "--rounds", "1", "--json"), "plain"),
    Case(("bench", "search", "--trials", "1", "--json"), "plain", stub="stub_bench_search"),
    Case(("bench", "learn", "--decisions", "5", "--json"), "plain", stub="stub_bench_learn"),
    # the fine-tune chain on SmolLM2-135M, each step reading the one before
    Case(("finetune", "distill", "--episodes", "2", "--steps", "20", "--out", "{tmp}/distill", "--json"), "finetune"),
    Case(("finetune", "prepare", "--input", "{tmp}/distill/distill.jsonl", "--out", "{tmp}/data", "--json"),
         "finetune"),
    Case(("finetune", "teacher", "--llm", "gguf:{smol_gguf}", "--n", "1", "--prompts", "{tmp}/distill/distill.jsonl",
          "--out", "{tmp}/teacher", "--json"), "finetune", stub="stub_teacher"),
    Case(("finetune", "lora", "--config", "{tmp}/lora.yaml", "--json"), "finetune"),
    Case(("finetune", "fuse", "--adapter-path", "{tmp}/adapters", "--save-path", "{tmp}/fused", "--dtype", "float32",
          "--json"), "finetune"),
    Case(("finetune", "gguf", "--model", "{tmp}/fused", "--out", "{tmp}/gguf", "--outtype", "f16", "--json"),
         "finetune"),
    Case(("finetune", "quantize", "--gguf", "{tmp}/gguf/model-f16.gguf", "--quant", "q4_0", "--json"), "finetune",
         needs="llama_cpp"),
    Case(("finetune", "ollama", "--gguf", "{smol_gguf}", "--name", "json-test", "--out", "{tmp}/ollama", "--json"),
         "finetune"),
    Case(("finetune", "eval", "--model", "gguf:{smol_gguf}", "--data", "{tmp}/data/test.jsonl", "--limit", "1",
          "--json"), "finetune", stub="stub_evaluate"),
    Case(("finetune", "model", "--json"), "finetune", stub="stub_trader_model"),
    # a user's own adapter records no teacher: the model is still printed (the teacher is null)
    Case(("finetune", "model", "--adapter", "{tmp}", "--json"), "finetune", stub="stub_trader_model"),
    Case(("finetune", "all", "--out", "{tmp}/all", "--json"), "finetune", stub="stub_pipeline"),
    Case(("bench", "llm", "--json"), "finetune", stub="stub_bench_llm"),
]

# A LoRA config as small as PEFT runs: one step of batch 1 on two blocks.
TINY_LORA = """model: smollm2-135m
data: {tmp}/data
adapter_path: {tmp}/adapters
fine_tune_type: lora
num_layers: 2
lora_parameters: {{rank: 4, scale: 20.0, dropout: 0.0, keys: [self_attn.q_proj, self_attn.v_proj]}}
iters: 1
batch_size: 1
learning_rate: 1.0e-3
max_seq_length: 640
steps_per_report: 1
steps_per_eval: 1
val_batches: 1
save_every: 0
backend: peft
"""


# --- stubs for the commands that cannot run in seconds (called in the child, before the CLI starts) -------------

def _noise() -> None:
    """What a library may do to stdout: Python's print, a write on file descriptor 1, C's stdio."""
    import ctypes

    print("noise: print() on stdout")
    sys.stdout.flush()
    os.write(1, b"noise: written on fd 1\n")
    libc = ctypes.CDLL(None)
    libc.puts(b"noise: C puts on stdout")
    libc.fflush(None)


def _filled(model_cls, **values):
    """An instance of a pydantic result model with every field given a plain value of its type."""
    from typing import get_args, get_origin

    plain = {int: 1, float: 1.5, str: "x", bool: True}
    for name, field in model_cls.model_fields.items():
        if name in values or not field.is_required():
            continue
        kind = field.annotation
        origin = get_origin(kind)
        if kind in plain:
            values[name] = plain[kind]
        elif origin in (dict, list):
            values[name] = origin()
        elif get_args(kind) and type(None) in get_args(kind):
            values[name] = None
        else:
            raise TypeError(f"no plain value for {model_cls.__name__}.{name}: {kind}")
    return model_cls(**values)


def _replace(module: str, name: str, result) -> None:
    import importlib

    def heavy(*args, **kwargs):
        _noise()
        return result() if callable(result) else result

    setattr(importlib.import_module(module), name, heavy)


def stub_chat_model() -> None:
    """`ask`: a real turn with the real tools on the replica; only the chat model's choices are scripted, as in
    tests/agent (SmolLM2 takes a minute per turn on a busy 2-core machine)."""
    import agent.console.ask as ask
    from tests.agent.conftest import scripted

    real = ask.ask_once

    def ask_once(question, config, **kwargs):
        _noise()
        chat = scripted({"intent": "price"}, "ETH is trading at the pool price.")
        return real(question, config.model_copy(update={"router": "model"}), chat=chat, label="scripted", **kwargs)

    ask.ask_once = ask_once


def stub_bench_agent() -> None:  # run for real with SmolLM2 by tests/agent/console/test_cli.py (20 s here)
    from agent.console.bench import AgentBench

    _replace("agent.console.bench", "bench_agent", lambda: _filled(AgentBench))


def stub_teacher() -> None:
    from finetune.data.teacher import TeacherResult

    _replace("finetune.data.teacher", "run_teacher", lambda: _filled(TeacherResult))


def stub_evaluate() -> None:  # run for real on SmolLM2 by tests/finetune/test_pipeline_smollm2.py (25 s here)
    from finetune.evaluation.evaluate import EvalResult

    _replace("finetune.evaluation.evaluate", "evaluate", lambda: _filled(EvalResult, task="trade"))


def stub_trader_model() -> None:
    from finetune.convert.trader_model import TraderModel

    _replace("finetune.convert.trader_model", "ensure_trader_model",
             lambda: _filled(TraderModel, name="trader-qwen-rl", method="lora", gguf="/m/base.gguf", lora=None))


def stub_pipeline() -> None:
    from finetune.pipeline import PipelineResult

    _replace("finetune.pipeline", "run_pipeline", lambda: PipelineResult(stages_s={"distill": 1.0}, skipped=[],
                                                                         artifacts={"gguf_quant": "/m/q4.gguf"}))


def stub_bench_llm() -> None:
    _replace("finetune.bench", "run_bench", {"q4_k_m_tokens_per_s": 20.0, "f16_tokens_per_s": 9.0})


def stub_rl_search() -> None:
    _replace("rl.tuning.search", "search", {"study": "rl-recipe", "trials": {"COMPLETE": 1}})


def stub_bench_search() -> None:
    _replace("rl.tuning.search_bench", "bench_search", {"cpus": 2, "runs": []})


def stub_bench_learn() -> None:
    from agent.console.learn_bench import LearnBench

    _replace("agent.console.learn_bench", "bench_learn", lambda: _filled(LearnBench))


def stub_bench_chain() -> None:
    from onchain.bench import ChainBench

    _replace("onchain.bench", "bench_chain", lambda: _filled(ChainBench))


# --- running the groups ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli():
    return cli_server()  # the worker's shared server: its imports are paid once per run


def _env(home: Path) -> dict[str, str]:
    return {"TRADER_HOME": str(home), "OLLAMA_HOST": "http://127.0.0.1:9",  # nothing listens there
            "TRADER_GGUF": "none"}  # a fine-tune run in ./runs would become the `auto` model


def _run_group(cli, group: str, home: Path, fields: dict[str, str], cwd: Path) -> dict:
    results = {}
    for case in CASES:
        if case.group != group:
            continue
        args = [a.format(**fields) for a in case.args]
        stub = f"tests.test_json_stdout:{case.stub}" if case.stub else None
        results[case] = cli.run(args, env=_env(home), unset=CLEAN_ENV, cwd=cwd, prelude=stub)
    return results


@pytest.fixture(scope="module")
def chain_results(cli, replica_build_home, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("json_chain")
    with replica_chain(seeded_home(replica_build_home, tmp / "home")) as home:
        yield _run_group(cli, "chain", home, {"tmp": str(tmp)}, tmp)


@pytest.fixture(scope="module")
def plain_results(cli, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("json_plain")
    return _run_group(cli, "plain", tmp / "home", {"tmp": str(tmp)}, tmp)


@pytest.fixture(scope="module")
def finetune_results(cli, ft_home, small_model, tmp_path_factory):
    from finetune.base_models.sources import smollm2_gguf

    tmp = tmp_path_factory.mktemp("json_finetune")
    (tmp / "lora.yaml").write_text(TINY_LORA.format(tmp=tmp))
    return _run_group(cli, "finetune", ft_home, {"tmp": str(tmp), "smol_gguf": str(smollm2_gguf())}, tmp)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_json_alone_on_stdout(case, request):
    if case.needs:
        pytest.importorskip(case.needs)
    result = request.getfixturevalue(f"{case.group}_results")[case]
    assert result.returncode == case.returncode, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    json.loads(result.stdout)  # the whole stdout: one JSON document, nothing before or after it
    assert result.stdout.lstrip()[:1] in ("{", "["), result.stdout[:200]
    if case.stub:  # the heavy function's prints reached stderr, all three kinds
        assert result.stderr.count("noise:") == 3, result.stderr[-2000:]


@pytest.mark.parametrize("args", [
    ("price", "--rpc-url", "http://127.0.0.1:9", "--json"),
    ("swap", "sell", "1", "ETH", "--json"),
    ("rl", "signal", "--position", "5", "--json"),
    ("finetune", "model", "--method", "bogus", "--json"),
    ("bench", "search", "--workers", "two", "--json"),
], ids=lambda a: " ".join(a[:2]))
def test_an_error_under_json_is_one_line_on_stderr(cli, tmp_path, args):
    result = cli.run(args, env=_env(tmp_path), unset=CLEAN_ENV)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_every_json_command_is_covered():
    import typer.main

    from agent.cli import app

    def walk(command, path=()):
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, (*path, name))
        if any("--json" in p.opts for p in command.params):
            yield " ".join(path)

    with_json = set(walk(typer.main.get_command(app)))
    assert len(with_json) >= 30  # the walk finds them (35 when this was written)
    tested = {path for path in with_json if any(c.args[:len(path.split())] == tuple(path.split()) for c in CASES)}
    assert with_json - tested == set(), "these `--json` commands have no case in CASES"


def test_stdout_to_stderr_moves_python_fd_and_c_output():
    """The redirect itself, in a plain process: nothing but print_json reaches stdout, and after the block stdout
    is stdout again."""
    code = ("from tests.test_json_stdout import _noise; from trader_core.cli_utils import print_json, "
            "stdout_to_stderr\nwith stdout_to_stderr():\n    _noise(); print_json({'ok': True}); _noise()\n"
            "print('after')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_S,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '{\n  "ok": true\n}\nafter\n'
    assert proc.stderr.count("noise:") == 6


@pytest.mark.parametrize("shell", ["trader chain down --json 2>&-", "trader chain down --json >&-"],
                         ids=["stderr closed", "stdout closed"])
def test_a_missing_stream_is_no_error(shell, tmp_path):
    trader = str(Path(sys.executable).parent / "trader")  # the console script itself
    proc = subprocess.run(shell.replace("trader", trader, 1), shell=True, capture_output=True, text=True,
                          timeout=HANG_S, env={**os.environ, "TRADER_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" or json.loads(proc.stdout) == {"stopped": False, "pid": None}


def test_in_process_runner_gets_the_json_and_not_the_noise(capsys):
    """typer's CliRunner and pytest's capsys replace sys.stdout with a stream that has no file descriptor: the
    redirect then works on Python's streams alone."""
    from trader_core.cli_utils import print_json, stdout_to_stderr

    with stdout_to_stderr():
        print("noise: print() on stdout")
        print_json([1])
    out, err = capsys.readouterr()
    assert out == "[\n  1\n]\n" and err == "noise: print() on stdout\n"
