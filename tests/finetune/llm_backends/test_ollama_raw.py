"""The raw-mode Ollama client sends the in-process path's prompt, byte for byte.

A real HTTP server on 127.0.0.1 speaks the part of Ollama's API the client uses (`/api/tags`, `/api/show`,
`/api/generate` with `raw: true`) and answers by running the real SmolLM2-135M GGUF on the exact prompt string it
received, tokenised as Ollama's raw mode and llama.cpp's chat handler do (special tokens parsed, nothing added).
No Ollama binary installs here; what is checked is what the client sends and how it reads the answers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from finetune.llm_backends.chat_models import open_ollama, smollm2_path
from finetune.llm_backends.chat_prompt import ChatTemplate
from finetune.llm_backends.llamacpp_chat import LlamaCppChat, _to_dicts
from finetune.llm_backends.ollama_export import STOPS
from finetune.llm_backends.runtime import chat_fn, load_llama
from finetune.plan_call import (PLAN_SCHEMA, PLAN_TOOL, PlanCall, parse_plan, plan_messages, system_prompt,
                                tool_call_message)

pytestmark = [pytest.mark.llm]
MODEL = "trader-qwen-rl"


class FakeOllama(BaseHTTPRequestHandler):
    """Enough of Ollama's HTTP API, backed by a real GGUF; every /api/generate body is kept in `received`."""

    llama = None
    received: list[dict] = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def _send(self, body: dict | list[dict], status: int = 200):
        lines = body if isinstance(body, list) else [body]
        data = "".join(json.dumps(b) + "\n" for b in lines).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-ndjson" if isinstance(body, list) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/api/tags":
            return self._send({"models": [{"name": f"{MODEL}:latest"}]})
        if self.path == "/api/version":
            return self._send({"version": "fake"})
        self._send({"error": "not found"}, 404)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/show":  # as Ollama: no tokenizer.chat_template in model_info
            return self._send({"details": {"parameter_size": "135M"}, "model_info": {}})
        if self.path != "/api/generate":
            return self._send({"error": "not found"}, 404)
        if body.get("model", "").split(":")[0] != MODEL or body.get("raw") is not True:
            return self._send({"error": "this fake serves raw prompts of one model only"}, 400)
        type(self).received.append(body)
        self._send(self.run_model(body))

    def run_model(self, body: dict) -> dict | list[dict]:
        import llama_cpp

        llama, opts = self.llama, body.get("options", {})
        tokens = llama.tokenize(body["prompt"].encode("utf-8"), add_bos=False, special=True)
        grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(body["format"]), verbose=False) \
            if isinstance(body.get("format"), dict) else None
        out = llama.create_completion(tokens, max_tokens=opts.get("num_predict", 128), stop=opts.get("stop", []),
                                      temperature=opts.get("temperature", 0.8), seed=opts.get("seed", 0),
                                      repeat_penalty=opts.get("repeat_penalty", 1.1), grammar=grammar)
        text = out["choices"][0]["text"]
        if body.get("stream", True):
            return [{"response": text[i:i + 4], "done": False} for i in range(0, len(text), 4)] + \
                [{"response": "", "done": True}]
        return {"model": body["model"], "response": text, "done": True}


@contextmanager
def serve(llama) -> Iterator[str]:
    """FakeOllama running `llama` on 127.0.0.1 -> its address."""
    FakeOllama.llama = llama
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOllama)  # port 0: the OS picks a free one
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server():
    with serve(load_llama(smollm2_path())) as host:  # the model the in-process path loads (one cache per process)
        yield host


@pytest.fixture()
def received():
    FakeOllama.received.clear()
    return FakeOllama.received


def test_the_plan_request_and_a_tool_round_reach_ollama_as_the_in_process_prompt(server, received):
    backend = open_ollama(MODEL, server, template_gguf=smollm2_path())
    assert "raw" in backend.label and backend.plans and backend.weak  # 135M: weak, and it plans itself
    in_process = chat_fn(f"gguf:{smollm2_path()}", max_tokens=12)
    plan = plan_messages("buy 0.1 ETH please")
    round_ = plan + [tool_call_message(PlanCall(intent="propose", side="buy", amount=0.1, asset="ETH")),
                     {"role": "tool", "content": '{"proposal": "p1", "eth_out": 0.1}'}]
    for messages in (plan, round_):
        received.clear()
        reply = backend.ask(messages, tools=[PLAN_TOOL], max_tokens=12)
        assert len(received) == 1
        body = received[0]
        expected = in_process.template.render(messages, [PLAN_TOOL])
        assert body["prompt"] == expected  # the same bytes
        assert body["raw"] is True and body["stream"] is False and "format" not in body  # as trained: free text
        assert body["options"]["stop"] == list(STOPS) and body["options"]["temperature"] == 0.0
        # the same prompt, greedy, on the same model: the same reply as in process
        assert reply == in_process(messages, tools=[PLAN_TOOL], max_tokens=12)
    # the shared renderer is what llama-cpp-python's own chat handler renders: the old in-process call agrees
    old = in_process.llm.create_chat_completion(messages=round_, tools=[PLAN_TOOL], temperature=0.0,
                                                max_tokens=12, seed=0)
    assert old["choices"][0]["message"]["content"] == in_process(round_, tools=[PLAN_TOOL], max_tokens=12)


def test_a_forced_plan_is_grammar_constrained_by_format_and_comes_back_parsed(server, received):
    from langchain_core.messages import HumanMessage, SystemMessage

    from finetune.llm_backends.chat_models import _forced_call

    backend = open_ollama(MODEL, server, template_gguf=smollm2_path())
    # the planning system prompt again: llama.cpp reuses the evaluated prefix, the test stays quick
    messages = [SystemMessage(system_prompt()), HumanMessage("Context: no pending proposal\nMessage: sell 2 ETH")]
    chat = backend.chat.model_copy(update={"max_tokens": 40})  # a plan is a few dozen tokens
    args = _forced_call(chat, "plan", "Route the message to one intent.", PLAN_SCHEMA, messages)
    body = received[-1]
    assert body["format"] == PLAN_SCHEMA and body["raw"] is True
    tool = {"type": "function", "function": {"name": "plan", "description": "Route the message to one intent.",
                                             "parameters": PLAN_SCHEMA}}
    assert body["prompt"] == ChatTemplate.from_gguf(smollm2_path()).render(_to_dicts(messages), [tool])
    assert isinstance(parse_plan(args), PlanCall)  # SmolLM2 untrained, yet the grammar gives a valid plan


def test_answers_stream_from_the_prompt_the_in_process_chat_model_renders(server, received):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    backend = open_ollama(MODEL, server, template_gguf=smollm2_path())
    messages = [SystemMessage(system_prompt()), HumanMessage("What is ETH?"),
                AIMessage("A coin."), HumanMessage("Say more.")]
    chat = backend.chat.model_copy(update={"temperature": 0.0, "max_tokens": 10})
    text = "".join(chunk.content for chunk in chat.stream(messages))
    body = received[-1]
    assert body["stream"] is True and body["options"]["stop"] == list(STOPS)
    assert body["prompt"] == ChatTemplate.from_gguf(smollm2_path()).render(_to_dicts(messages))
    in_process = LlamaCppChat(model_path=str(smollm2_path()), chat_format=None, repeat_penalty=1.1,
                              temperature=0.0, max_tokens=10)
    assert text == in_process.invoke(messages).content  # same prompt through llama.cpp's own handler: same text
