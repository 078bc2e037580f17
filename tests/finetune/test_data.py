"""Fast contracts: prompt/response format, balancing by sampling, time split, configs, Modelfile."""

import json
from collections import Counter

import pytest

from finetune import formats
from finetune.data.dataset import PrepareConfig, labels, prepare, time_split
from finetune.data.distill import balance_by_sampling, decision_to_record
from finetune.train.lora import LoraConfig, check_resume, load_lora_config, lr_at
from finetune.llm_backends.ollama_export import OllamaConfig, _template_of, write_modelfile
from finetune.data.teacher import clean_reply
from trader_core.errors import ConfigError, DataError


OBS = {"ret_0": 0.6012, "ret_1": -1.2, "ret_2": 0.2, "ret_3": -0.14, "ret_4": 0.19, "ret_5": 0.25, "ret_6": 0.31,
       "ret_7": -0.66, "realised_vol": 1.93, "hl_range": 2.4, "ema_fast_dist": -0.8, "ema_slow_dist": -1.1,
       "position": 1.0, "unrealised_pnl": -0.0121, "time_in_trade": 0.26, "drawdown": 0.034,
       "prev_HOLD": 0.0, "prev_BUY": 1.0, "prev_SELL": 0.0}
RAW = {"realised_vol": 0.0085, "hl_range": 0.0112, "ema_fast_dist": -0.0043, "ema_slow_dist": -0.0121,
       "price_change_24": 0.021}


def state(action="BUY", ts=1_700_000_000, change=0.021, **kw):
    base = dict(timestamp=ts, price=1834.5, volume=None, volatility=0.0085, price_change=change, eth=1.25,
                usdc=1234.56, action=action, agreement=0.72, q_margin=0.12, q_values=[0.10, 0.31, 0.19], features=dict(RAW),
                observation=dict(OBS))
    return {**base, **kw}


def test_question_carries_the_policys_whole_observation_and_the_seeds_framing():
    rec = decision_to_record(state())
    prompt = rec["prompt"]
    assert "+0.60 -1.20 +0.20 -0.14 +0.19 +0.25 +0.31 -0.66" in prompt  # the 8 scaled returns, newest first
    assert "volatility 0.85%/bar (z +1.93)" in prompt and "range 1.12% (z +2.40)" in prompt
    assert "vs fast EMA -0.43%, vs slow EMA -1.21%" in prompt and "volume z n/a" in prompt
    # account state as the env observes it: log PnL -> %, bars / 100 -> bars, previous action from the one-hot
    assert "wallet holding ETH; unrealised PnL -1.20%; 26 bars in the trade; drawdown 3.40%; previous action BUY" \
        in prompt
    assert prompt.splitlines()[-1].startswith("Given ETH price is $1,834.50 with volume of n/a and volatility of 0.85%")
    assert "recent price change of +2.10%" in prompt and "1.2500 ETH and 1,234.56 USDC" in prompt
    assert rec["position"] == "holding"


def test_answer_uses_only_numbers_the_question_shows_and_no_q_values():
    import re

    for action, obs in (("SELL", OBS), ("BUY", {**OBS, "position": 0.0, "unrealised_pnl": 0.0, "time_in_trade": 0.0})):
        rec = decision_to_record(state(action, observation=obs))
        lines = rec["response"].splitlines()
        assert lines[-1] == f"RECOMMENDATION: {action}"
        assert "Q-value" not in rec["response"] and "agreement" not in rec["response"]
        numbers = re.findall(r"[+-]?\d+\.\d+%?", lines[0])
        assert numbers and all(n.lstrip("+") in rec["prompt"] or n in rec["prompt"] for n in numbers), numbers


def test_without_an_observation_the_question_is_the_seeds_own():
    st = state()
    st.pop("observation")
    rec = decision_to_record(st)
    assert rec["prompt"].startswith("Given ETH price is $1,834.50") and "policy sees" not in rec["prompt"]
    assert rec["response"].splitlines()[-1] == "RECOMMENDATION: BUY"


def test_trader_state_from_a_live_signal():
    from rl.policy import Signal

    sig = Signal(action="HOLD", agreement=0.4, q_margin=0.05, q_values=[0.1, 0.0, -0.1], features=RAW, timestamp=1,
                 time="1970-01-01T00:00:01Z", price=1834.5,
                 raw_action="HOLD", observation=OBS)
    st = formats.TraderState.from_signal(sig, eth=1.25, usdc=1234.56)
    assert formats.question(st) == decision_to_record(state())["prompt"]


@pytest.mark.parametrize("text,expected", [
    ("blah\nRECOMMENDATION: SELL (confidence 0.5)", "SELL"),
    ("RECOMMENDATION: BUY ... on second thought\nRECOMMENDATION: hold", "HOLD"),
    ("**RECOMMENDATION:** **BUY**", "BUY"),
    ("I would buy some ETH", None),
    ("RECOMMENDATION: MAYBE", None),
    ("", None),
])
def test_parse_action_reads_the_last_recommendation_and_never_guesses(text, expected):
    assert formats.parse_action(text) == expected


def test_balancing_samples_states_and_never_relabels():
    recs = [decision_to_record(state(a, ts=1_700_000_000 + 3600 * i))
            for i, a in enumerate(["HOLD"] * 60 + ["BUY"] * 25 + ["SELL"] * 10)]
    by_ts = {r["timestamp"]: r["action"] for r in recs}
    out = balance_by_sampling(recs, max_ratio=1.0, seed=0)
    assert Counter(r["action"] for r in out) == {"HOLD": 10, "BUY": 10, "SELL": 10}
    assert all(by_ts[r["timestamp"]] == r["action"] for r in out)  # every label is the original one
    assert [r["timestamp"] for r in out] == sorted(r["timestamp"] for r in out)
    assert out == balance_by_sampling(recs, max_ratio=1.0, seed=0)  # deterministic
    assert out != balance_by_sampling(recs, max_ratio=1.0, seed=1)
    loose = balance_by_sampling(recs, max_ratio=2.0, seed=0)
    assert Counter(r["action"] for r in loose) == {"HOLD": 20, "BUY": 20, "SELL": 10}


def test_time_split_keeps_later_states_out_of_training(tmp_path):
    recs = [decision_to_record(state(a, ts=1_700_000_000 + 3600 * (i // 2)))
            for i, a in enumerate(["BUY", "SELL", "HOLD"] * 40)]
    parts = time_split(recs, 0.1, 0.1)
    assert max(r["timestamp"] for r in parts["train"]) < min(r["timestamp"] for r in parts["valid"])
    assert max(r["timestamp"] for r in parts["valid"]) < min(r["timestamp"] for r in parts["test"])
    assert sum(len(v) for v in parts.values()) == len(recs)
    formats.write_jsonl(tmp_path / "d.jsonl", recs)
    res = prepare(PrepareConfig(inputs=[str(tmp_path / "d.jsonl")], out=str(tmp_path / "data")))
    assert {k: v.n for k, v in res.splits.items()} == {k: len(v) for k, v in parts.items()}
    line = json.loads((tmp_path / "data" / "train.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in line["messages"]] == ["system", "user", "assistant"]
    pairs = labels(tmp_path / "data" / "test.jsonl")
    assert [lab for _, lab in pairs] == [r["action"] for r in parts["test"]]
    assert json.loads((tmp_path / "data" / "prepare_config.json").read_text())["test_frac"] == 0.1


def test_bad_records_are_one_line_errors(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"timestamp": 1, "prompt": "x", "response": "no action"}\n')
    with pytest.raises(DataError, match="RECOMMENDATION"):
        prepare(PrepareConfig(inputs=[str(tmp_path / "bad.jsonl")], out=str(tmp_path / "o")))
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="line 1 is not JSON"):
        prepare(PrepareConfig(inputs=[str(tmp_path / "broken.jsonl")], out=str(tmp_path / "o")))
    with pytest.raises(DataError, match="does not exist"):
        prepare(PrepareConfig(inputs=[str(tmp_path / "missing.jsonl")], out=str(tmp_path / "o")))


def test_lora_yaml_uses_mlx_keys_and_rejects_typos(tmp_path):
    from pathlib import Path

    import finetune

    for yaml_file in sorted((Path(finetune.__file__).parent / "configs").glob("*.yaml")):
        cfg = load_lora_config(yaml_file)
        assert cfg.fine_tune_type == "lora" and cfg.lora_parameters.rank > 0
    (tmp_path / "typo.yaml").write_text("model: m\ndata: d\nlearning_rat: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rat"):
        load_lora_config(tmp_path / "typo.yaml")


def test_incompatible_stage1_adapter_is_a_clear_error(tmp_path):
    stage1 = LoraConfig(model="m", data="d", adapter_path=str(tmp_path / "s1"), backend="peft")
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "adapter_config.json").write_text(stage1.model_dump_json())
    ok = stage1.model_copy(update={"resume_adapter_file": str(tmp_path / "s1" / "adapters.safetensors")})
    assert check_resume(ok, "peft") == tmp_path / "s1"
    bad = ok.model_copy(update={"lora_parameters": stage1.lora_parameters.model_copy(update={"rank": 16})})
    with pytest.raises(ConfigError, match="rank 8 vs 16"):
        check_resume(bad, "peft")


def test_cosine_schedule_warms_up_then_decays():
    cfg = LoraConfig(model="m", data="d", learning_rate=1e-3, iters=100,
                     lr_schedule={"name": "cosine_decay", "warmup": 10, "arguments": [1e-3, 90, 1e-4]})
    assert lr_at(0, cfg) == 0.0 and lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(55, cfg) == pytest.approx(5.5e-4) and lr_at(100, cfg) == pytest.approx(1e-4)


def test_teacher_replies_are_cleaned_or_rejected():
    assert clean_reply("<think>long</think>up trend -> buy\nRECOMMENDATION: **buy**. Good luck") == \
        "up trend -> buy\nRECOMMENDATION: BUY"
    assert clean_reply("I think you should buy") is None


def test_modelfile_keeps_qwens_tool_template_and_stops_and_prints_the_create_command(tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # nothing listens on the discard port
    gguf = tmp_path / "model-q4_k_m.gguf"
    gguf.write_bytes(b"GGUF")
    res = write_modelfile(OllamaConfig(gguf=str(gguf)))
    text = (tmp_path / "Modelfile").read_text()
    assert f"FROM {gguf.resolve()}" in text and formats.SYSTEM_PROMPT in text and "ADAPTER" not in text
    assert "Qwen2.5-Coder-0.5B-Instruct" in text.splitlines()[0]  # the model says its real base
    for piece in ("{{- if .Tools }}", "<tools>", '{{ if eq .Function.Name "plan" }}{"type": "function", ',
                  "{{ else }}{{ json . }}{{ end }}", "<tool_call>", "{{ range .ToolCalls }}",
                  '"arguments": {{ json .Function.Arguments }}', "<tool_response>"):
        assert piece in text  # tools print as JSON (tests/finetune/llm_backends/test_modelfile_template.py)
    assert "{{ .Function }}" not in _template_of(text)  # Go struct syntax in Ollama (ollama/ollama#14601)
    for line in ("temperature 0.0", "top_p 0.9", "top_k 40", "repeat_penalty 1.0", "num_ctx 4096",
                 'stop "<|im_end|>"', 'stop "<|im_start|>"', 'stop "<|endoftext|>"'):
        assert f"PARAMETER {line}\n" in text
    lora = tmp_path / "lora.gguf"
    lora.write_bytes(b"GGUF")
    write_modelfile(OllamaConfig(gguf=str(gguf), adapter=str(lora), out=str(tmp_path / "with_adapter")))
    assert f"ADAPTER {lora.resolve()}" in (tmp_path / "with_adapter" / "Modelfile").read_text()
    assert not res.registered and res.command == f"ollama create trader-qwen-rl -f {tmp_path.resolve() / 'Modelfile'}"
    with pytest.raises(ConfigError, match="bad Ollama model name"):
        write_modelfile(OllamaConfig(gguf=str(gguf), name="bad name!"))


def test_llama_cpp_build_features_are_read_from_the_system_info_line():
    pytest.importorskip("llama_cpp")
    from finetune.bench import llama_system_info

    info = llama_system_info()
    assert info["features"] == sorted(set(info["features"])) and info["text"]
    assert all(f and ":" not in f and "=" not in f for f in info["features"])
