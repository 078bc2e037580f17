"""`trader finetune ...`: bad input is one line on stderr and exit code 1, never a traceback."""

import os

import pytest

from tests.conftest import run_trader


def trader(*args, home):
    env = {**os.environ, "TRADER_HOME": str(home)}
    env.pop("DEBUG", None)
    return run_trader(args, env=env)


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


def test_prepare_refuses_a_binary_input_in_one_line(tmp_path):
    (tmp_path / "data.jsonl").write_bytes(bytes(range(256)) * 8)
    out = trader("finetune", "prepare", "--input", str(tmp_path / "data.jsonl"), "--out", str(tmp_path / "o"),
                 home=tmp_path)
    err = out.stderr.strip()
    assert out.returncode == 1 and err.startswith("error: ") and "binary" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("target,message", [
    ("{tmp}/exists.gguf", "already exists"),
    ("{tmp}/missing/dir/out.gguf", "does not exist; create it first"),
    ("{tmp}", "is a folder"),
])
def test_quantize_out_that_cannot_be_written_is_one_line(target, message, tmp_path):
    (tmp_path / "in.gguf").write_bytes(b"GGUF")
    (tmp_path / "exists.gguf").write_bytes(b"keep me")
    out = trader("finetune", "quantize", "--gguf", str(tmp_path / "in.gguf"), "--out",
                 target.replace("{tmp}", str(tmp_path)), home=tmp_path)
    err = out.stderr.strip()
    assert out.returncode == 1 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert (tmp_path / "exists.gguf").read_bytes() == b"keep me"  # nothing lost


@pytest.mark.parametrize("args,message", [
    (["finetune", "eval"], "--model is needed"),
    (["finetune", "model", "--method", "bogus"], "--method 'bogus'"),
    (["finetune", "eval", "--model", "gguf:{tmp}/none.gguf", "--data", "{tmp}/x.jsonl"], "does not exist"),
])
def test_eval_and_model_bad_input(args, message, tmp_path):
    out = trader(*[a.replace("{tmp}", str(tmp_path)) for a in args], home=tmp_path)
    err = out.stderr.strip()
    assert out.returncode == 1 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
