"""An in-process GGUF chat model (llama-cpp-python) behind LangChain's `BaseChatModel` interface.

`bind_tools(..., tool_choice=NAME)` uses llama.cpp's `chatml-function-calling` handler, which constrains
the output with a grammar built from the tool's JSON schema: a forced call is valid JSON of that shape even
from a 135M model. llama_cpp is imported only when a model is first used.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from trader_core.errors import ConfigError, LLMError, require
from trader_core.llama_check import ensure_llama_works

# One loaded model per (path, n_ctx): loading is ~0.2 s for SmolLM2 but seconds for a 3B model.
_CACHE: dict[tuple[str, int], Any] = {}
_LOCK = threading.Lock()


def llm_threads() -> int:
    """Threads for in-process models: $TRADER_LLM_THREADS, else half the cores (1 on a 2-core box), at most 4."""
    raw = os.environ.get("TRADER_LLM_THREADS", "").strip()
    if not raw:
        return max(1, min(4, (os.cpu_count() or 2) // 2))
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if not 1 <= threads <= 256:
        raise ConfigError(f"TRADER_LLM_THREADS must be a whole number of threads from 1 to 256, got {raw!r}; "
                          "unset it to use half the cores")
    return threads


def load_llama(path: str | Path, n_ctx: int = 2048, n_threads: int | None = None):
    """Load (once per process) a GGUF file with the function-calling chat format."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise LLMError(f"GGUF model file {path} does not exist; pass --llm gguf:/path/to/model.gguf")
    key = (str(path.resolve()), n_ctx)
    with _LOCK:
        if key not in _CACHE:
            # Spinning OpenMP workers starve each other on a busy machine (measured: a 830-token prompt took
            # 12-23 s instead of 6 s with 2 threads on 2 loaded cores); passive waiting costs little when idle.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            ensure_llama_works()  # a build that crashes on batched decode: one line, not a segfault mid-turn
            llama_cpp = require("llama_cpp", 'pip install "rl-trader-agent[agent]" (builds llama-cpp-python)')
            # Half the cores (1 on a 2-core box): with every core busy, one slow thread stalls llama.cpp's
            # barriers (measured: plan calls 3-10x slower with 2 threads next to a training job on 2 cores).
            threads = n_threads or llm_threads()
            try:
                _CACHE[key] = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads,
                                              chat_format="chatml-function-calling", verbose=False)
            except Exception as exc:  # llama.cpp raises ValueError/RuntimeError on bad files
                raise LLMError(f"cannot load GGUF model {path}: {exc}") from exc
            # Turns alternate a ~630-token planning prompt and an answer prompt, so the single KV prefix
            # llama.cpp keeps is always the wrong one; a RAM cache of states (~5 MB each for SmolLM2)
            # turns the planning prompt's 3 s re-evaluation into a 0.2 s state load.
            _CACHE[key].set_cache(llama_cpp.LlamaRAMCache(capacity_bytes=128 << 20))
        return _CACHE[key]


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
        return load_llama(self.model_path, self.n_ctx, self.n_threads)

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
