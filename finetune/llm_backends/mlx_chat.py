"""An MLX chat model (mlx-lm, in-process) behind LangChain's `BaseChatModel` interface.

For Apple silicon (or Linux with `mlx[cpu]`): `--llm mlx:PATH` with PATH a Hugging Face / MLX folder such as
the fused trader model. mlx-lm has no grammar-constrained sampling, so a forced tool call is asked for as
one JSON object and parsed; output that is not valid JSON raises LLMError and the agent falls back.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from finetune.llm_backends.llamacpp_chat import _to_dicts
from trader_core.errors import LLMError, require

_CACHE: dict[str, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def load_mlx(path: str | Path):
    """(model, tokenizer) for an MLX/HF folder, loaded once per process."""
    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise LLMError(f"{path} is not a model folder (no config.json); pass --llm mlx:/path/to/fused-model")
    with _LOCK:
        if str(path) not in _CACHE:
            mlx_lm = require("mlx_lm", 'pip install mlx-lm (Apple silicon) or pip install "mlx[cpu]" mlx-lm (Linux)')
            try:
                _CACHE[str(path)] = mlx_lm.load(str(path))
            except Exception as exc:
                raise LLMError(f"mlx-lm cannot load {path}: {exc}") from exc
        return _CACHE[str(path)]


class MLXChat(BaseChatModel):
    """An mlx-lm model run in this process."""

    model_path: str
    temperature: float = 0.2
    max_tokens: int = 120

    @property
    def _llm_type(self) -> str:
        return "mlx"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | dict | None = None, **kwargs: Any):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs)

    def _prompt(self, messages, tools=None, tool_choice=None) -> tuple[str, str]:
        """(prompt, prefill): a forced call lists the fields compactly and starts the JSON object itself,
        because small models echo a full JSON schema instead of filling it."""
        _, tok = load_mlx(self.model_path)
        chat = _to_dicts(messages)
        name = tool_choice.get("function", {}).get("name") if isinstance(tool_choice, dict) else tool_choice
        tool = next((t for t in tools or [] if t["function"]["name"] == name), None)
        prefill = ""
        if tool is not None:
            params = tool["function"]["parameters"]
            props = params.get("properties", {})
            first = (params.get("required") or list(props) or ["value"])[0]
            rules = " ".join(f'"{k}" is one of {", ".join(json.dumps(x) for x in v["enum"])}.'
                             for k, v in props.items() if "enum" in v)
            example = json.dumps({first: (props.get(first, {}).get("enum") or ["..."])[0]})
            chat.append({"role": "system", "content": f"Answer with JSON only, for example {example}. {rules}"})
            is_str = props.get(first, {}).get("type") == "string"
            prefill = f'{{"{first}": "' if is_str else f'{{"{first}": '
        return tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) + prefill, prefill

    def _run(self, prompt: str, max_tokens: int, temperature: float | None = None) -> Iterator[str]:
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        model, tok = load_mlx(self.model_path)
        temp = self.temperature if temperature is None else temperature
        for response in stream_generate(model, tok, prompt, max_tokens=max_tokens, sampler=make_sampler(temp=temp)):
            yield response.text

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        tools, choice = kwargs.get("tools"), kwargs.get("tool_choice")
        prompt, prefill = self._prompt(messages, tools, choice)
        forced = bool(tools) and choice not in (None, "auto", "none")
        text = prefill + "".join(self._run(prompt, kwargs.get("max_tokens", self.max_tokens),
                                           0.0 if forced else None))  # a routing call should be repeatable
        if forced:
            args = _first_object(text)
            if args is None and prefill.endswith('"') and '"' in text[len(prefill):]:
                # keep just the first (string) field when the rest is not valid JSON
                args = _first_object(text[: text.index('"', len(prefill)) + 1] + "}")
            if not isinstance(args, dict):
                raise LLMError(f"the mlx model did not return a JSON object for the forced call: {text[:120]!r}")
            name = choice.get("function", {}).get("name") if isinstance(choice, dict) else choice
            msg = AIMessage(content="", tool_calls=[{"name": name, "args": args, "type": "tool_call",
                                                     "id": f"call_{uuid.uuid4().hex[:8]}"}])
        else:
            msg = AIMessage(content=_cut(text, stop))
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs) -> Iterator[ChatGenerationChunk]:
        emitted = ""
        yielded = False
        for piece in self._run(self._prompt(messages)[0], kwargs.get("max_tokens", self.max_tokens)):
            cut = _cut(emitted + piece, stop)
            new = cut[len(emitted):]
            if new:
                yielded = True
                yield ChatGenerationChunk(message=AIMessageChunk(content=new))
            emitted = cut
            if len(cut) < len(emitted + piece) or (stop and any(s in emitted + piece for s in stop)):
                break
        if not yielded:
            yield ChatGenerationChunk(message=AIMessageChunk(content=""))


def _first_object(text: str) -> dict | None:
    """The first complete JSON object in `text` (the model may keep writing after it)."""
    for end in [i + 1 for i, ch in enumerate(text) if ch == "}"]:
        try:
            value = json.loads(text[:end])
        except json.JSONDecodeError:
            continue
        return value if isinstance(value, dict) else None
    return None


def _cut(text: str, stop: list[str] | None) -> str:
    for s in stop or []:
        idx = text.find(s)
        if idx >= 0:
            text = text[:idx]
    return text
