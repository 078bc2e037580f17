"""Ollama in raw mode: the trader model served by Ollama sees byte for byte the prompt of the in-process path.

Ollama's own template engine cannot reproduce Qwen's trained prompt wherever tools are passed (it printed
`{{ .Function }}` as Go struct syntax, ollama/ollama#14601, and tool-call arguments without Qwen's spacing), so
for trader-qwen-rl the client renders the prompt itself with the model's Jinja chat template
(finetune.llm_backends.chat_prompt, the function the in-process path uses) and POSTs `/api/generate` with
`raw: true` (Ollama then applies no template), the Modelfile's stop tokens and greedy options. It reads the
`<tool_call>` blocks itself. A forced tool call sends the tool's JSON schema as `format`, Ollama's grammar
constraint, as llama.cpp's chat handler builds a grammar from the same schema in process.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from finetune.llm_backends.chat_prompt import ChatTemplate
from finetune.llm_backends.ollama_export import STOPS
from finetune.llm_backends.runtime import ChatFn, public_address
from trader_core.errors import LLMError

_CALLS = re.compile(r"<tool_call>\s*(\{.*?\})\s*(?:</tool_call>|$)", re.S)


def generate(host: str, model: str, prompt: str, options: dict, schema: dict | None = None,
             timeout: float = 300) -> str:
    """One raw `/api/generate` call -> the generated text (Ollama's `response`)."""
    import httpx

    body = {"model": model, "prompt": prompt, "raw": True, "stream": False, "options": options}
    if schema is not None:
        body["format"] = schema
    try:
        resp = httpx.post(f"{host}/api/generate", json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise LLMError(f"cannot reach Ollama at {public_address(host)} ({type(exc).__name__})") from None
    if resp.status_code != 200:
        raise LLMError(f"Ollama at {public_address(host)} answered HTTP {resp.status_code}: {resp.text[:200]!r}")
    return resp.json().get("response", "")


def stream_generate(host: str, model: str, prompt: str, options: dict, timeout: float = 300) -> Iterator[str]:
    """A raw `/api/generate` call streamed: the text pieces as Ollama sends them (one JSON object a line)."""
    import httpx

    body = {"model": model, "prompt": prompt, "raw": True, "stream": True, "options": options}
    try:
        with httpx.stream("POST", f"{host}/api/generate", json=body, timeout=timeout) as resp:
            if resp.status_code != 200:
                raise LLMError(f"Ollama at {public_address(host)} answered HTTP {resp.status_code}")
            for line in resp.iter_lines():
                if not line.strip():
                    continue
                part = json.loads(line)
                if part.get("error"):
                    raise LLMError(f"Ollama at {public_address(host)}: {str(part['error'])[:200]}")
                if part.get("response"):
                    yield part["response"]
                if part.get("done"):
                    return
    except httpx.HTTPError as exc:
        raise LLMError(f"cannot reach Ollama at {public_address(host)} ({type(exc).__name__})") from None


def options(temperature: float, max_tokens: int, seed: int = 0, repeat_penalty: float = 1.0,
            stop: list[str] | None = None) -> dict:
    """Ollama sampling options matching the in-process call (no repeat penalty unless asked, the Modelfile's
    stop tokens; temperature 0 is greedy)."""
    return {"temperature": temperature, "num_predict": max_tokens, "seed": seed, "repeat_penalty": repeat_penalty,
            "stop": [*STOPS, *(s for s in stop or [] if s not in STOPS)]}


def raw_ask(model: str, host: str, template: ChatTemplate, max_tokens: int = 64,
            temperature: float = 0.0) -> ChatFn:
    """finetune.llm_backends.runtime's ChatFn for an Ollama model, rendered here and sent raw: the agent's planner
    (`tools=[PLAN_TOOL]`) gets the reply text with the model's own `<tool_call>` block (parse_plan reads it)."""

    def ask(messages: list[dict], tools: list[dict] | None = None, **overrides: Any) -> str:
        prompt = template.render(messages, tools)
        opts = options(overrides.get("temperature", temperature), overrides.get("max_tokens", max_tokens),
                       seed=overrides.get("seed", 0))
        return generate(host, model, prompt, opts)
    ask.template = template
    return ask


def tool_calls(text: str) -> list[dict]:
    """LangChain tool calls from the `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks of a reply."""
    calls = []
    for block in _CALLS.findall(text or ""):
        try:
            data = json.loads(block)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            args = data.get("arguments")
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    args = {"__unparsed__": args}
            calls.append({"name": data["name"], "args": args if isinstance(args, dict) else {},
                          "id": f"call_{uuid.uuid4().hex[:8]}", "type": "tool_call"})
    return calls


class RawOllamaChat(BaseChatModel):
    """An Ollama model asked in raw mode with its own chat template; the answer-side twin of LlamaCppChat
    (`chat_format=None`): same message conversion, same template, same sampling defaults."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str
    host: str
    template: ChatTemplate
    temperature: float = 0.2
    max_tokens: int = 120
    repeat_penalty: float = 1.1  # as the in-process trader model's answers (chat_models.open_trader_gguf)
    seed: int = 0

    @property
    def _llm_type(self) -> str:
        return "ollama-raw"

    def bind_tools(self, tools, *, tool_choice: str | dict | None = None, **kwargs: Any):
        formatted = [convert_to_openai_tool(t) for t in tools]
        if isinstance(tool_choice, dict):
            tool_choice = tool_choice.get("function", {}).get("name")
        if tool_choice in ("any", "required") and len(formatted) == 1:
            tool_choice = formatted[0]["function"]["name"]
        forced = tool_choice if tool_choice not in (None, "auto", "none", "any", "required") else None
        return self.bind(tools=formatted, forced=forced, **kwargs)

    def _prompt(self, messages, tools) -> str:
        from finetune.llm_backends.llamacpp_chat import _to_dicts

        return self.template.render(_to_dicts(messages), tools or None)

    def _options(self, stop, kwargs) -> dict:
        return options(kwargs.get("temperature", self.temperature), kwargs.get("max_tokens", self.max_tokens),
                       seed=self.seed, repeat_penalty=self.repeat_penalty, stop=stop)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        tools, forced = kwargs.get("tools"), kwargs.get("forced")
        if forced:
            kwargs.setdefault("temperature", 0.0)  # a forced routing call should be repeatable
            tool = next((t for t in tools or [] if t["function"]["name"] == forced), None)
            if tool is None:
                raise LLMError(f"tool choice {forced!r} is not among the tools passed")
            text = generate(self.host, self.model, self._prompt(messages, tools), self._options(stop, kwargs),
                            schema=tool["function"].get("parameters") or {"type": "object"})
            try:
                args = json.loads(text)
            except json.JSONDecodeError:
                args = {"__unparsed__": text}
            calls = [{"name": forced, "args": args if isinstance(args, dict) else {"value": args},
                      "id": f"call_{uuid.uuid4().hex[:8]}", "type": "tool_call"}]
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content="", tool_calls=calls))])
        text = generate(self.host, self.model, self._prompt(messages, tools), self._options(stop, kwargs))
        calls = tool_calls(text) if tools else []
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="" if calls else text,
                                                                       tool_calls=calls))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs) -> Iterator[ChatGenerationChunk]:
        yielded = False
        for piece in stream_generate(self.host, self.model, self._prompt(messages, None), self._options(stop, kwargs)):
            gen = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=gen)
            yielded = True
            yield gen
        if not yielded:  # the model stopped at once: an empty answer, not an error
            yield ChatGenerationChunk(message=AIMessageChunk(content=""))
