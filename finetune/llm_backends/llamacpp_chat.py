"""An in-process GGUF chat model (llama-cpp-python) behind LangChain's `BaseChatModel` interface.

Models are loaded through finetune.llm_backends.runtime (the one LLM layer): one cache of loaded GGUFs per process.

`bind_tools(..., tool_choice=NAME)` uses llama.cpp's `chatml-function-calling` handler, which constrains
the output with a grammar built from the tool's JSON schema: a forced call is valid JSON of that shape even
from a 135M model. llama_cpp is imported only when a model is first used.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from trader_core.errors import ConfigError, LLMError, ModelError, require



def llm_threads() -> int:
    """Threads for in-process models (finetune.llm_backends.runtime.llm_threads: $TRADER_LLM_THREADS, else half the cores)."""
    from finetune.llm_backends.runtime import llm_threads as threads

    return threads()


def load_llama(path: str | Path, n_ctx: int = 2048, n_threads: int | None = None, lora: str | None = None,
               chat_format: str | None = "chatml-function-calling"):
    """A GGUF model from the one cache of loaded models (finetune.llm_backends.runtime.load_llama), with a RAM cache of
    prompt states: turns alternate a ~630-token planning prompt and an answer prompt, so the single KV prefix
    llama.cpp keeps is always the wrong one (a 3 s re-evaluation becomes a 0.2 s state load)."""
    from finetune.llm_backends.runtime import load_llama as load

    path = Path(path).expanduser()
    if not path.is_file():
        raise LLMError(f"GGUF model file {path} does not exist; pass --llm gguf:/path/to/model.gguf")
    require("llama_cpp", 'pip install "rl-trader-agent[agent]" (builds llama-cpp-python)')
    threads = n_threads or llm_threads()  # a bad TRADER_LLM_THREADS is the user's one-line error, not a fallback
    try:
        return load(path, lora, n_ctx=n_ctx, n_threads=threads, chat_format=chat_format, ram_cache_mb=128)
    except (ConfigError, ModelError) as exc:
        raise LLMError(f"cannot load GGUF model {path}: {exc}") from exc


def _to_dicts(messages: Sequence[BaseMessage]) -> list[dict]:
    out = []
    for m in messages:
        if isinstance(m, ToolMessage):
            # The chatml handler has no tool role: tool results become user turns the model can read.
            out.append({"role": "user", "content": f"Tool result ({m.name or 'tool'}): {m.content}"})
        elif isinstance(m, AIMessage) and m.tool_calls:
            calls = "; ".join(f"{c['name']}({json.dumps(c['args'])})" for c in m.tool_calls)
            out.append({"role": "assistant", "content": f"Calling {calls}"})
        else:
            role = {"human": "user", "ai": "assistant", "system": "system"}.get(m.type, "user")
            out.append({"role": role, "content": m.content if isinstance(m.content, str) else str(m.content)})
    return out


class LlamaCppChat(BaseChatModel):
    """A GGUF model run in this process; forced tool calls are grammar-constrained."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    lora_path: str | None = None  # a GGUF LoRA applied at load (trader-qwen-rl)
    chat_format: str | None = "chatml-function-calling"  # None: the GGUF's own chat template (as trained)
    n_ctx: int = 2048
    n_threads: int | None = None
    temperature: float = 0.2
    max_tokens: int = 120
    repeat_penalty: float = 1.3  # small models loop ("I'm a trader, I'm a trader...") without it
    seed: int = Field(default=0, description="sampling seed, for repeatable answers")

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def llama(self):
        return load_llama(self.model_path, self.n_ctx, self.n_threads, self.lora_path, self.chat_format)

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | dict | None = None, **kwargs: Any):
        formatted = [convert_to_openai_tool(t) for t in tools]
        if isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "any", "required"):
            tool_choice = {"type": "function", "function": {"name": tool_choice}}
        elif tool_choice in ("any", "required") and len(formatted) == 1:
            tool_choice = {"type": "function", "function": {"name": formatted[0]["function"]["name"]}}
        if isinstance(tool_choice, dict):
            kwargs.setdefault("temperature", 0.0)  # a forced routing call should be repeatable
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _params(self, stop, kwargs) -> dict:
        params = {"temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed,
                  "repeat_penalty": self.repeat_penalty}
        if stop:
            params["stop"] = stop
        for key in ("tools", "tool_choice", "max_tokens", "temperature"):
            if kwargs.get(key) is not None:
                params[key] = kwargs[key]
        return params

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        try:
            out = self.llama.create_chat_completion(messages=_to_dicts(messages), **self._params(stop, kwargs))
        except LLMError:
            raise
        except Exception as exc:
            raise LLMError(f"llama.cpp generation failed: {exc}") from exc
        msg = out["choices"][0]["message"]
        calls = []
        for call in msg.get("tool_calls") or []:
            fn = call["function"]
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except json.JSONDecodeError:
                args = {"__unparsed__": fn.get("arguments")}
            calls.append({"name": fn["name"], "args": args if isinstance(args, dict) else {"value": args},
                          "id": call.get("id") or f"call_{uuid.uuid4().hex[:8]}", "type": "tool_call"})
        usage = out.get("usage") or {}
        ai = AIMessage(content=msg.get("content") or "", tool_calls=calls,
                       usage_metadata={"input_tokens": usage.get("prompt_tokens", 0),
                                       "output_tokens": usage.get("completion_tokens", 0),
                                       "total_tokens": usage.get("total_tokens", 0)})
        return ChatResult(generations=[ChatGeneration(message=ai)])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs) -> Iterator[ChatGenerationChunk]:
        params = self._params(stop, kwargs)
        params.pop("tools", None), params.pop("tool_choice", None)
        yielded = False
        try:
            stream = self.llama.create_chat_completion(messages=_to_dicts(messages), stream=True, **params)
            for chunk in stream:
                delta = chunk["choices"][0]["delta"].get("content")
                if delta:
                    gen = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                    if run_manager:
                        run_manager.on_llm_new_token(delta, chunk=gen)
                    yielded = True
                    yield gen
            if not yielded:  # the model stopped at once (a stop sequence): an empty answer, not an error
                yield ChatGenerationChunk(message=AIMessageChunk(content=""))
        except LLMError:
            raise
        except Exception as exc:
            raise LLMError(f"llama.cpp generation failed: {exc}") from exc
