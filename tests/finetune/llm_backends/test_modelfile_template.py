"""The Modelfile's TEMPLATE, rendered as Ollama would for `ollama run` and /api/chat users, prints JSON where the
model was trained on JSON: the tools block (the `plan` tool byte for byte as trained) and the tool-call block.

Rendered by tests/finetune/llm_backends/gotemplate.py (Go text/template semantics for what the TEMPLATE uses,
Ollama v0.14-v0.33's values and `json` function); no Ollama binary installs here to run it for real.
"""

from __future__ import annotations

import json
import re

import pytest

from finetune.llm_backends.ollama_export import OllamaConfig, _template_of, render_modelfile
from finetune.plan_call import PLAN_TOOL, PlanCall, plan_messages, tool_call_message
from tests.finetune.llm_backends.gotemplate import chat_values, render

QUOTE_TOOL = {"type": "function", "function": {
    "name": "quote", "description": "What a swap would give <no trade> & no signing.",
    "parameters": {"type": "object", "properties": {"side": {"type": "string", "enum": ["buy", "sell"]},
                                                    "amount": {"type": "number"}},
                   "required": ["side", "amount"]}}}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    gguf = tmp_path_factory.mktemp("mf") / "model.gguf"
    gguf.write_bytes(b"GGUF")
    return _template_of(render_modelfile(OllamaConfig(gguf=str(gguf))))


def blocks(prompt: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>\n(.*?)\n</{tag}>", prompt, re.S)


def test_a_plan_request_prints_the_plan_tool_as_trained_and_other_tools_as_json(template):
    messages = plan_messages("buy 0.1 ETH")
    prompt = render(template, chat_values(messages, [PLAN_TOOL, QUOTE_TOOL]))
    (tools,) = blocks(prompt, "tools")
    lines = tools.split("\n")
    assert lines[0] == json.dumps(PLAN_TOOL)  # Qwen's `tojson`, byte for byte as in training
    assert [json.loads(line) for line in lines] == [PLAN_TOOL, QUOTE_TOOL]  # every tool is JSON
    assert "\\u003cno trade\\u003e \\u0026" in lines[1]  # Go's json.Marshal escapes, and it still parses
    assert prompt.startswith(f"<|im_start|>system\n{messages[0]['content']}\n\n# Tools\n")
    assert prompt.endswith("<|im_start|>user\nContext: no pending proposal\nMessage: buy 0.1 ETH<|im_end|>\n"
                           "<|im_start|>assistant\n")


def test_a_tool_round_prints_the_call_as_json_and_the_result_as_a_tool_response(template):
    plan = PlanCall(intent="propose", side="buy", amount=0.1, asset="ETH")
    messages = plan_messages("buy 0.1 ETH") + [tool_call_message(plan),
                                               {"role": "tool", "content": '{"proposal": "p1"}'}]
    prompt = render(template, chat_values(messages, [PLAN_TOOL]))
    (call,) = blocks(prompt, "tool_call")[1:]  # the first is the system prompt's example
    data = json.loads(call)
    assert data == {"name": "plan", "arguments": plan.arguments()}
    assert list(data["arguments"]) == ["intent", "side", "amount", "asset"]  # insertion order, as trained
    assert blocks(prompt, "tool_response") == ['{"proposal": "p1"}']
    assert prompt.endswith("</tool_response><|im_end|>\n<|im_start|>assistant\n")


def test_the_renderer_reproduces_ollamas_struct_printing_of_function():
    # the old TEMPLATE line: Ollama printed Go struct syntax there (ollama/ollama#14601); the renderer must too,
    # or the JSON checks above would prove nothing
    old = '{{ range .Tools }}{"type": "function", "function": {{ .Function }}}{{ end }}'
    printed = render(old, chat_values([{"role": "user", "content": "hi"}], [PLAN_TOOL]))
    assert printed.startswith('{"type": "function", "function": {plan Route')
    with pytest.raises(json.JSONDecodeError):
        json.loads(printed)
    assert json.loads(render("{{ range .Tools }}{{ . }}{{ end }}", chat_values([], [PLAN_TOOL]))) == PLAN_TOOL
