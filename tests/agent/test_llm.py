"""LLM backends: spec parsing, backend down -> one message + fallback, the real SmolLM2 GGUF end to end."""

from __future__ import annotations

import io
import os
import socket

import pytest

from finetune.llm_backends.chat_models import LLM, candidates, ollama_host, public_address, smollm2_path
from trader_core.errors import ConfigError, LLMError


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on, for the whole test: bound but never listening, connections to it are
    refused, and no other process can take it meanwhile (a port closed again could be a new node's by now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.mark.parametrize("spec, fragment", [
    ("gpt4", "unknown --llm"), ("gguf", "needs a path"), ("openai", "needs a model name"), ("mlx:", "needs a path"),
])
def test_bad_specs_are_one_line_config_errors(spec, fragment):
    with pytest.raises(ConfigError, match=fragment):
        candidates(spec)


def test_addresses_never_show_credentials():
    assert public_address("https://user:sk-secret@openrouter.ai/api/v1?key=abc") == "https://openrouter.ai"
    assert public_address("localhost:11434") == "http://localhost:11434"


def test_ollama_host_accepts_bare_host_port(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:11434")
    assert ollama_host() == "http://127.0.0.1:11434"


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    from finetune.llm_backends.chat_models import open_gguf

    with pytest.raises(LLMError, match="does not exist"):
        open_gguf(tmp_path / "nope.gguf")


def test_mlx_without_a_model_says_so_once_and_falls_back(tmp_path):
    notes = []
    llm = LLM(f"mlx:{tmp_path / 'no-model'}", notify=notes.append)
    assert len(notes) == 1 and ("mlx-lm" in notes[0] or "no config.json" in notes[0])
    assert "SmolLM2" in llm.label


@pytest.mark.llm
@pytest.mark.slow
def test_mlx_backend_forced_call_and_stream_when_mlx_is_installed(request):
    pytest.importorskip("mlx_lm", reason="mlx-lm is not installed (Apple silicon, or Linux with mlx[cpu])")
    pytest.importorskip("transformers", reason="the MLX test model is made from the GGUF with transformers")
    from langchain_core.messages import HumanMessage

    from agent.turn.planner import PLAN_SCHEMA

    # the real SmolLM2 weights as an HF / MLX folder: the session's, shared with the fine-tune tests
    folder = request.getfixturevalue("small_model")
    notes = []
    llm = LLM(f"mlx:{folder}", notify=notes.append)
    assert llm.current.kind == "mlx" and llm.current.weak
    llm.current.chat = llm.current.chat.model_copy(update={"max_tokens": 16})  # the plan's first field fits
    # no grammar in mlx-lm: the JSON object is started for the model (prefill) and its first field kept
    args = llm.forced_call("plan", "Route the message.", PLAN_SCHEMA, [HumanMessage("ETH price?")])
    assert llm.current.kind == "mlx" and notes == []
    assert isinstance(args.get("intent"), str) and args["intent"]
    assert "".join(llm.stream([HumanMessage("Say hello.")], stop=["\n"])).strip()


@pytest.mark.llm
def test_ollama_down_gives_one_message_and_falls_back_to_the_embedded_model(monkeypatch, closed_port):
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port}")
    notes = []
    llm = LLM("ollama:trader-qwen-rl", notify=notes.append)
    assert len(notes) == 1 and "unreachable" in notes[0] and "falling back" in notes[0]
    assert llm.current.kind == "gguf" and "SmolLM2" in llm.label


@pytest.mark.llm
def test_auto_is_quiet_when_no_ollama_runs(monkeypatch, closed_port):
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port}")
    notes = []
    llm = LLM("auto", notify=notes.append)
    assert notes == [] and llm.current.kind == "gguf"


@pytest.mark.llm
def test_openai_server_down_mid_turn_falls_back_and_still_answers(chain_home, closed_port):
    """The backend fails on the first real call: one message, the embedded model takes over, tools still run."""
    from agent.turn.planner import Agent
    from agent.turn.tools import ToolSession

    notes = []
    llm = LLM("openai:some-model", base_url=f"http://127.0.0.1:{closed_port}/v1", notify=notes.append)
    assert llm.current.kind == "openai"
    agent = Agent(llm, ToolSession(), router="hybrid")
    result = agent.turn("what is the ETH price?")
    assert any("failed" in n and "falling back" in n for n in notes)
    assert "127.0.0.1" not in " ".join(notes) or "/v1" not in " ".join(notes)  # no paths or keys in messages
    assert llm.current.kind == "gguf"
    assert [c.name for c in result.tool_calls] == ["get_price"] and result.tool_calls[0].ok
    assert result.answer


@pytest.mark.llm
@pytest.mark.skipif(not os.environ.get("OLLAMA_HOST"), reason="no Ollama server here (set OLLAMA_HOST to test it)")
def test_real_ollama_backend_when_available(chain_home):
    from finetune.llm_backends.chat_models import DEFAULT_OLLAMA_MODEL, ollama_models

    try:
        names = ollama_models(ollama_host())
    except LLMError as exc:
        pytest.skip(f"OLLAMA_HOST does not answer: {exc}")
    model = DEFAULT_OLLAMA_MODEL if any(n.startswith(DEFAULT_OLLAMA_MODEL) for n in names) else (names or [None])[0]
    if model is None:
        pytest.skip("the Ollama server has no model")
    from agent.turn.planner import Agent
    from agent.turn.tools import ToolSession

    agent = Agent(LLM(f"ollama:{model}"), ToolSession())
    result = agent.turn("what is the ETH price?")
    assert result.plan["intent"] in ("price", "chat", "quote", "signal", "portfolio", "propose", "explain",
                                     "trades", "execute")


@pytest.mark.llm
@pytest.mark.slow
def test_smollm2_answers_a_price_question_through_the_repl(chain_home):
    """End to end with the real SmolLM2 GGUF in-process, through the REPL's code path."""
    from rich.console import Console

    from agent.console.chat import ChatREPL
    from agent.turn.session import AgentConfig
    from onchain.api import connect, get_price

    assert smollm2_path().is_file()
    out = io.StringIO()
    repl = ChatREPL(AgentConfig(), console=Console(file=out, width=200, color_system=None),
                    input_fn=lambda prompt: "n")
    assert "SmolLM2" in repl.agent.llm.label
    assert repl.handle("What is the ETH price right now?")
    result = repl.last
    price = get_price(connect()).price
    assert [c.name for c in result.tool_calls] == ["get_price"]
    assert result.tool_calls[0].result["price"] == pytest.approx(price, rel=1e-9)
    assert result.answer.strip()
    text = out.getvalue()
    assert "✓ get_price" in text and "trader>" in text
    # the answer the user reads quotes the real price (the model's own words, or the tool fact appended)
    assert str(int(price)) in result.answer.replace(",", "")


@pytest.mark.llm
def test_auto_prefers_the_project_model_when_one_exists(tmp_path, monkeypatch, closed_port):
    fused = tmp_path / "model-q4_k_m.gguf"
    fused.symlink_to(smollm2_path())  # any real GGUF stands in for the fine-tuned one
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("TRADER_GGUF", str(fused))
    llm = LLM("auto", notify=lambda line: None)
    assert "project model" in llm.label and llm.current.weak


def test_auto_skips_a_missing_project_model(tmp_path, monkeypatch):
    from finetune.llm_backends.chat_models import project_gguf

    monkeypatch.setenv("TRADER_GGUF", str(tmp_path / "absent.gguf"))
    assert project_gguf() is None


def test_backend_errors_are_scrubbed_of_urls_and_keys():
    from finetune.llm_backends.chat_models import _short

    exc = RuntimeError("401 for https://user:pw@api.example.com/v1?key=1 with key sk-abcdefghijklmnop\nmore")
    text = _short(exc)
    assert "pw@" not in text and "sk-abcdefghijklmnop" not in text and "more" not in text


@pytest.mark.llm
def test_openai_backend_against_a_real_openai_compatible_server(chain_home, openai_server):
    """The forced plan goes through the OpenAI tools API (tool_choice) of a real server; no fallback."""
    from agent.turn.planner import INTENTS, Agent
    from agent.turn.tools import ToolSession

    notes = []
    llm = LLM("openai:smollm2", base_url=openai_server, notify=notes.append)
    result = Agent(llm, ToolSession(), router="model").turn("what's the price of eth")
    assert notes == [] and llm.current.kind == "openai"
    assert result.plan["source"] == "model" and result.plan["intent"] in INTENTS
    assert result.answer.strip()


@pytest.mark.parametrize("label, size", [
    ("494.03M", 0.49403), ("7.6B", 7.6), ("qwen2.5-3b-instruct", 3.0), ("Qwen2.5-Coder-0.5B-Instruct", 0.5),
    ("smollm2-135m", 0.135), ("FROM ./qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 0.5), ("gpt-4o", None),
])
def test_model_sizes_are_read_from_metadata_labels_and_names(label, size):
    from finetune.llm_backends.runtime import size_from_label

    assert size_from_label(label) == (pytest.approx(size) if size is not None else None)


def test_a_small_openai_compatible_model_is_never_treated_as_strong():
    from finetune.llm_backends.chat_models import open_openai

    assert open_openai("qwen2.5-0.5b-instruct", "http://127.0.0.1:9/v1").weak
    assert not open_openai("qwen2.5-7b-instruct", "http://127.0.0.1:9/v1").weak


def test_one_ollama_host_serves_the_agent_and_finetune():
    import finetune.llm_backends.chat_models
    import finetune.llm_backends.runtime

    assert finetune.llm_backends.chat_models.ollama_host is finetune.llm_backends.runtime.ollama_host and finetune.llm_backends.chat_models.public_address is finetune.llm_backends.runtime.public_address


def test_auto_tries_trader_qwen_rl_in_process_before_smollm2(monkeypatch, closed_port):
    """Order only: the 491 MB Qwen is never loaded in tests (its opener is replaced by one that fails)."""
    import finetune.llm_backends.chat_models

    tried = []

    def no_qwen(notify=None):
        tried.append("trader-qwen-rl")
        raise LLMError("trader-qwen-rl is not built here")

    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port}")
    monkeypatch.delenv("TRADER_GGUF", raising=False)
    monkeypatch.setattr(finetune.llm_backends.chat_models, "open_trader_gguf", no_qwen)
    monkeypatch.chdir(os.path.dirname(__file__))  # no ./runs/finetune project model here
    notes = []
    llm = LLM("auto", notify=notes.append)
    assert tried == ["trader-qwen-rl"] and "SmolLM2" in llm.label
    assert len(notes) == 1 and "trader-qwen-rl is not built here" in notes[0]  # Ollama's absence stays quiet
    monkeypatch.setenv("TRADER_GGUF", "none")  # what make test sets: trader-qwen-rl is not even tried
    tried.clear()
    LLM("auto", notify=notes.append)
    assert tried == []
