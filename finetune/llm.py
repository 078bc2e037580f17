"""Chat backends for eval and teacher: `gguf:PATH`, `hf:DIR`, `ollama:NAME`, `openai:MODEL`.

Each spec becomes a function messages -> reply text. Network backends (Ollama, OpenAI-compatible) read
their address from OLLAMA_HOST / OPENAI_BASE_URL and the key from OPENAI_API_KEY, which is never printed.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Callable

from trader_core.errors import ConfigError, DependencyMissing, LLMError, ModelError

ChatFn = Callable[[list[dict]], str]
KINDS = ("gguf", "hf", "ollama", "openai")


def split_spec(spec: str) -> tuple[str, str]:
    kind, _, target = spec.partition(":")
    if kind not in KINDS or not target:
        raise ConfigError(f"model spec {spec!r} must be one of gguf:PATH, hf:DIR, ollama:NAME, openai:MODEL")
    return kind, target


def ollama_host() -> str:
    host = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434")
    return host if host.startswith("http") else f"http://{host}"


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
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise LLMError(f"{url.split('?')[0]} answered HTTP {exc.code}: {exc.read()[:200]!r}") from None
    except (OSError, ValueError) as exc:
        raise LLMError(f"cannot reach {url.split('?')[0]} ({exc}); is the server running?") from None


def chat_fn(spec: str, max_tokens: int = 128, temperature: float = 0.0, n_ctx: int = 2048) -> ChatFn:
    """A function that sends chat messages to the model named by `spec` and returns its reply."""
    kind, target = split_spec(spec)
    if kind == "gguf":
        return _gguf(target, max_tokens, temperature, n_ctx)
    if kind == "hf":
        return _hf(target, max_tokens, temperature)
    if kind == "ollama":
        def ask(messages: list[dict]) -> str:
            out = _post(f"{ollama_host()}/api/chat", {"model": target, "messages": messages, "stream": False,
                                                      "options": {"temperature": temperature,
                                                                  "num_predict": max_tokens}})
            return out.get("message", {}).get("content", "")
        return ask
    base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        raise ConfigError("openai: backends need OPENAI_API_KEY (and OPENAI_BASE_URL for OpenRouter etc.)")

    def ask_openai(messages: list[dict]) -> str:
        out = _post(f"{base}/chat/completions", {"model": target, "messages": messages, "temperature": temperature,
                                                 "max_tokens": max_tokens}, {"Authorization": f"Bearer {key}"})
        try:
            return out["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"{base} returned no choices for model {target!r}") from None
    return ask_openai


def _gguf(path: str, max_tokens: int, temperature: float, n_ctx: int) -> ChatFn:
    from pathlib import Path

    if not Path(path).exists():
        raise ConfigError(f"GGUF file {path} does not exist; run `trader finetune quantize` first")
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise DependencyMissing(f"llama-cpp-python is not installed ({exc}); pip install llama-cpp-python==0.3.36") from None
    from trader_core.llama_check import ensure_llama_works
    from trader_core.runtime import default_torch_threads

    ensure_llama_works()
    llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=max(1, default_torch_threads()), verbose=False, seed=0)

    def ask(messages: list[dict]) -> str:
        out = llm.create_chat_completion(messages=messages, temperature=temperature, max_tokens=max_tokens)
        return out["choices"][0]["message"]["content"] or ""
    ask.llm = llm  # benchmarks read token counts from it
    return ask


def _hf(path: str, max_tokens: int, temperature: float) -> ChatFn:
    import torch

    from finetune.peft_backend import load_base
    from trader_core.runtime import configure_torch

    configure_torch()
    try:
        model, tok = load_base(path, dtype="float32")
    except ModelError:
        raise
    model.eval()

    def ask(messages: list[dict]) -> str:
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=temperature > 0,
                                 temperature=temperature if temperature > 0 else None, top_p=None, top_k=None,
                                 pad_token_id=tok.pad_token_id)
        return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    ask.model, ask.tokenizer = model, tok
    return ask
