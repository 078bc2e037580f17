"""`trader finetune ...`: bad input is one line on stderr and exit code 1, never a traceback."""

import os
import subprocess
import sys

import pytest


def trader(*args, home):
    env = {**os.environ, "TRADER_HOME": str(home)}
    env.pop("DEBUG", None)
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("args,message", [
    (["finetune", "lora", "--config", "missing.yaml"], "config file missing.yaml does not exist"),
    (["finetune", "lora", "--model", "m"], "invalid setting 'data'"),
    (["finetune", "prepare", "--input", "nope.jsonl", "--out", "{tmp}/o"], "nope.jsonl does not exist"),
    (["finetune", "fuse", "--adapter-path", "{tmp}"], "adapter_config.json is missing"),
    (["finetune", "gguf", "--model", "{tmp}"], "is not a Hugging Face model folder"),
    (["finetune", "quantize", "--gguf", "{tmp}/x.gguf"], "does not exist"),
    (["finetune", "ollama", "--gguf", "{tmp}/x.gguf"], "does not exist"),
    (["finetune", "eval", "--model", "hf", "--data", "x.jsonl"], "model spec 'hf' must be one of"),
    (["finetune", "distill", "--episodes", "0", "--out", "{tmp}/d"], "invalid setting 'episodes'"),
])
def test_bad_input_is_one_clear_line(args, message, tmp_path):
    out = trader(*[a.replace("{tmp}", str(tmp_path)) for a in args], home=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    err = out.stderr.strip()
    assert err.startswith("error: ") and message.replace("{tmp}", str(tmp_path)) in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
