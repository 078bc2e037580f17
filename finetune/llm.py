"""Chat backends for eval, teacher and bench: `gguf:PATH[+LORA.gguf]`, `hf:DIR`, `ollama:NAME`, `openai:MODEL`.

Each spec becomes an `ask(messages, tools=None) -> reply text` function. Tools are rendered by the model's
own chat template (llama.cpp and transformers read the same Jinja template from the model; Ollama renders its
Modelfile TEMPLATE), so a model fine-tuned on tool calls is asked exactly as it was trained. Decoding is
greedy with no repetition penalty unless asked: every rung of the export ladder is compared on equal terms.
Network backends read their address from OLLAMA_HOST / OPENAI_BASE_URL and the key from OPENAI_API_KEY,
which is never printed.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from trader_core.errors import ConfigError, DependencyMissing, LLMError, ModelError

KINDS = ("gguf", "hf", "ollama", "openai")


class ChatFn(Protocol):
    def __call__(self, messages: list[dict], tools: list[dict] | None = None) -> str: ...


def split_spec(spec: str) -> tuple[str, str]:
    kind, _, target = spec.partition(":")
    if kind not in KINDS or not target:
        raise ConfigError(f"model spec {spec!r} must be one of gguf:PATH (or gguf:BASE+LORA.gguf), hf:DIR, "
                          "ollama:NAME, openai:MODEL, or 'default'")
    return kind, target


# -- addresses -----------------------------------------------------------------------------------------------
def ollama_host() -> str:
    """The Ollama server to talk to: $OLLAMA_HOST (a bind address such as 0.0.0.0 means this machine)."""
    host = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434").strip() or "http://127.0.0.1:11434"
    if "://" not in host:
        host = f"http://{host}"
    if urlsplit(host).hostname in ("0.0.0.0", ""):
        host = host.replace("0.0.0.0", "127.0.0.1")
    return host.rstrip("/")


def public_address(url: str) -> str:
    """scheme://host:port only: never echo credentials, paths or query strings (they can carry API keys)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def ollama_answers(timeout: float = 1.0) -> bool:
    """True when an Ollama server answers at OLLAMA_HOST."""
    try:
        with urllib.request.urlopen(f"{ollama_host()}/api/version", timeout=timeout) as resp:
            return resp.status == 200
    except (OSError, ValueError):
        return False


def _post(url: str, body: dict, headers: dict | None = None, timeout: float = 300) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    where = public_address(url)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise LLMError(f"{where} answered HTTP {exc.code}: {exc.read()[:200]!r}") from None
    except (OSError, ValueError) as exc:
        raise LLMError(f"cannot reach {where} ({type(exc).__name__}); is the server running?") from None


# -- llama.cpp in-process ------------------------------------------------------------------------------------
_LLAMAS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def llm_threads() -> int:
    """llama.cpp threads: $TRADER_LLM_THREADS, else half the cores (1 on a 2-core box shared with training)."""
    raw = os.environ.get("TRADER_LLM_THREADS", "")
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            raise ConfigError(f"TRADER_LLM_THREADS={raw!r} is not a whole number; unset it or use e.g. 2") from None
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def load_llama(path: str | Path, lora: str | Path | None = None, n_ctx: int = 2048, n_threads: int | None = None):
    """A llama.cpp model (once per process per settings), optionally with a GGUF LoRA applied at load."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"GGUF file {path} does not exist; build it first (`trader finetune quantize`)")
    if lora is not None and not Path(lora).is_file():
        raise ConfigError(f"GGUF LoRA {lora} does not exist; convert the adapter first")
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise DependencyMissing(f"llama-cpp-python is not installed ({exc}); "
                                "pip install llama-cpp-python==0.3.36") from None
    from trader_core.llama_check import ensure_llama_works

    ensure_llama_works()  # a build that crashes on batched decode: one line here, not a segfault mid-answer
    threads = n_threads or llm_threads()
    key = (str(path.resolve()), str(lora) if lora else None, n_ctx, threads)
    with _LOCK:
        if key not in _LLAMAS:
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning workers starve a shared machine
            try:
                _LLAMAS[key] = Llama(model_path=str(path), lora_path=str(lora) if lora else None, n_ctx=n_ctx,
                                     n_threads=threads, verbose=False, seed=0)
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"cannot load GGUF {path.name}: {exc}") from None
        return _LLAMAS[key]


def _gguf(target: str, max_tokens: int, temperature: float, n_ctx: int, repeat_penalty: float) -> ChatFn:
    base, _, lora = target.partition("+")
    llm = load_llama(base, lora or None, n_ctx=n_ctx)

    def ask(messages: list[dict], tools: list[dict] | None = None) -> str:
        out = llm.create_chat_completion(messages=messages, tools=tools, temperature=temperature,
                                         max_tokens=max_tokens, repeat_penalty=repeat_penalty)
        return out["choices"][0]["message"]["content"] or ""
    ask.llm = llm  # benchmarks read token counts from it
    return ask


# -- transformers in-process ---------------------------------------------------------------------------------
def _hf(path: str, max_tokens: int, temperature: float, repeat_penalty: float) -> ChatFn:
    import torch

    from finetune.peft_backend import load_base
    from trader_core.runtime import configure_torch

    configure_torch()
    model, tok = load_base(path, dtype="float32")
    model.eval()

    def ask(messages: list[dict], tools: list[dict] | None = None) -> str:
        ids = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=temperature > 0,
                                 temperature=temperature if temperature > 0 else None, top_p=None, top_k=None,
                                 repetition_penalty=repeat_penalty if repeat_penalty != 1.0 else None,
                                 pad_token_id=tok.pad_token_id)
        return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    ask.model, ask.tokenizer = model, tok
    return ask


# -- network -------------------------------------------------------------------------------------------------
def _ollama(model: str, max_tokens: int, temperature: float, repeat_penalty: float) -> ChatFn:
    def ask(messages: list[dict], tools: list[dict] | None = None) -> str:
        body = {"model": model, "messages": messages, "stream": False,
                "options": {"temperature": temperature, "num_predict": max_tokens, "repeat_penalty": repeat_penalty}}
        if tools:
            body["tools"] = tools
        msg = _post(f"{ollama_host()}/api/chat", body).get("message", {})
        calls = msg.get("tool_calls") or []
        if calls:  # Ollama parses <tool_call> blocks itself; hand them back in the same text form
            return "\n".join(f"<tool_call>\n{json.dumps(c.get('function', {}))}\n</tool_call>" for c in calls)
        return msg.get("content", "")
    return ask


def _openai(model: str, max_tokens: int, temperature: float) -> ChatFn:
    base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        raise ConfigError("openai: backends need OPENAI_API_KEY (and OPENAI_BASE_URL for OpenRouter etc.)")

    def ask(messages: list[dict], tools: list[dict] | None = None) -> str:
        body = {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        if tools:
            body["tools"] = tools
        out = _post(f"{base}/chat/completions", body, {"Authorization": f"Bearer {key}"})
        try:
            msg = out["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"{public_address(base)} returned no choices for model {model!r}") from None
        calls = msg.get("tool_calls") or []
        if calls:
            return "\n".join(f"<tool_call>\n{json.dumps(c.get('function', {}))}\n</tool_call>" for c in calls)
        return msg.get("content") or ""
    return ask


def chat_fn(spec: str, max_tokens: int = 128, temperature: float = 0.0, n_ctx: int = 2048,
            repeat_penalty: float = 1.0) -> ChatFn:
    """A function that sends chat messages (and optional tools) to the model named by `spec`."""
    kind, target = split_spec(spec)
    if kind == "gguf":
        return _gguf(target, max_tokens, temperature, n_ctx, repeat_penalty)
    if kind == "hf":
        return _hf(target, max_tokens, temperature, repeat_penalty)
    if kind == "ollama":
        return _ollama(target, max_tokens, temperature, repeat_penalty)
    return _openai(target, max_tokens, temperature)
