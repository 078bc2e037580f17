"""The one LLM layer: addresses, llama.cpp loading, model sizes, and chat backends for every caller.

The agent's LangChain models (finetune/llm_backends/chat_models.py, finetune/llm_backends/llamacpp_chat.py) and finetune's eval, teacher and bench all take
their Ollama address, thread count, in-process llama.cpp models and model sizes from here, so there is one
`ollama_host()` and one cache of loaded GGUFs (the agent and an eval in one process share a loaded model).

Chat backends for eval, teacher, bench and the agent's trained planner: `gguf:PATH[+LORA.gguf]`, `hf:DIR`,
`ollama:NAME`, `openai:MODEL`.

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
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from trader_core.errors import ConfigError, DependencyMissing, LLMError, ModelError
from trader_core.paths import trader_home

KINDS = ("gguf", "hf", "ollama", "openai")


class ChatFn(Protocol):
    """messages (+ tools) -> the reply text; `temperature` / `max_tokens` override the spec's for one call, and
    in-process GGUF models (`ask.grammars`) take a GBNF `grammar` the reply must satisfy."""

    def __call__(self, messages: list[dict], tools: list[dict] | None = None, **overrides: Any) -> str: ...


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


_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z])")
SMALL_B = 1.0  # below a billion parameters a model routes and restates numbers unreliably (measured)


def size_from_label(text: str | None) -> float | None:
    """Billions of parameters from a size label or model name: '494.03M' -> 0.494, 'qwen2.5-3b-instruct' -> 3.0,
    'Qwen2.5-Coder-0.5B' -> 0.5; None when it names no size."""
    found = _SIZE.findall(text or "")
    if not found:
        return None
    number, unit = found[-1]
    return float(number) / (1000.0 if unit.lower() == "m" else 1.0)


def ollama_model_size_b(model: str, host: str | None = None, timeout: float = 2.0) -> float | None:
    """An Ollama model's size in billions of parameters: its `parameter_size` metadata, else the base its
    Modelfile names (FROM / the `# base:` line our Modelfiles write), else its name; None when unknown."""
    try:
        info = _post(f"{host or ollama_host()}/api/show", {"model": model}, timeout=timeout)
    except LLMError:
        return size_from_label(model)
    details = info.get("details") or {}
    for text in (details.get("parameter_size"), info.get("modelfile"), model):
        size = size_from_label(text) if isinstance(text, str) else None
        if size is not None:
            return size
    return None


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
    """llama.cpp threads: $TRADER_LLM_THREADS, else half the cores (1 on a 2-core box shared with training), at
    most 4: with every core busy, one slow thread stalls llama.cpp's barriers (measured: plan calls 3-10x slower
    with 2 threads next to a training job on 2 cores)."""
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


def load_llama(path: str | Path, lora: str | Path | None = None, n_ctx: int = 2048, n_threads: int | None = None,
               chat_format: str | None = None, ram_cache_mb: int = 0):
    """A llama.cpp model (once per process per settings), optionally with a GGUF LoRA applied at load.

    `chat_format=None` renders prompts with the GGUF's own chat template (tools included), as the model was
    trained; the agent's generic models use "chatml-function-calling" (grammar-forced tool calls).
    `ram_cache_mb` keeps evaluated prompt states in RAM, and on disk for the next process
    (`finetune.llm_backends.prompt_cache`): a turn alternates a planning prompt and an answer prompt, so the
    single KV prefix llama.cpp keeps is always the wrong one, and a new process would evaluate the system prompt
    and tool schema again."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"GGUF file {path} does not exist; build it first (`trader finetune quantize`)")
    if lora is not None and not Path(lora).is_file():
        raise ConfigError(f"GGUF LoRA {lora} does not exist; convert the adapter first")
    from finetune.llm_backends.prompt_cache import PromptStateCache, compact_llama_class, model_key

    try:
        llama_class = compact_llama_class()
    except ImportError as exc:
        raise DependencyMissing(f"llama-cpp-python is not installed ({exc}); "
                                "pip install llama-cpp-python==0.3.36") from None
    from trader_core.llama_check import ensure_llama_works
    from trader_core.native_logs import last_llama_error, quiet_fds, route_llama_logs

    ensure_llama_works()  # a build that crashes on batched decode: one line here, not a segfault mid-answer
    threads = n_threads or llm_threads()
    key = (str(path.resolve()), str(lora) if lora else None, n_ctx, threads, chat_format)
    with _LOCK:
        if key not in _LLAMAS:
            # Spinning OpenMP workers starve each other on a busy machine (measured: a 830-token prompt took
            # 12-23 s instead of 6 s with 2 threads on 2 loaded cores); passive waiting costs little when idle.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            # llama.cpp logs a screen per load (tensors, CPU_REPACK buffers, LoRA) even with verbose=False:
            # its log callback and, around the load, the process's stdout/stderr go to $TRADER_HOME/logs
            log = route_llama_logs()
            try:
                with quiet_fds():
                    _LLAMAS[key] = llama_class(
                        model_path=str(path), lora_path=str(lora) if lora else None, n_ctx=n_ctx, n_threads=threads,
                        chat_format=chat_format, verbose=False, seed=0)
            except (ValueError, RuntimeError) as exc:
                why = last_llama_error()
                raise ModelError(f"cannot load GGUF {path.name}: {exc}" + (f" (llama.cpp: {why})" if why else "")
                                 + (f"; full log in {log}" if log else "")) from None
        llama = _LLAMAS[key]
        if ram_cache_mb and getattr(llama, "cache", None) is None:
            folder = trader_home() / "cache" / "prompt-states" / model_key(path, lora, n_ctx, llama.n_batch)
            llama.set_cache(PromptStateCache(folder, memory_mb=ram_cache_mb))
        return llama


def _gguf(target: str, max_tokens: int, temperature: float, n_ctx: int, repeat_penalty: float) -> ChatFn:
    from finetune.llm_backends.chat_prompt import ChatTemplate

    base, _, lora = target.partition("+")
    llm = load_llama(base, lora or None, n_ctx=n_ctx, ram_cache_mb=128)  # prompt states: see prompt_cache
    template = ChatTemplate.of(llm)

    def ask(messages: list[dict], tools: list[dict] | None = None, **overrides: Any) -> str:
        # The shared renderer (the raw-mode Ollama client sends these very bytes), then what llama-cpp-python's
        # own chat handler does with them: special tokens parsed, no extra BOS, stop at the EOS text.
        grammar = overrides.get("grammar")  # GBNF text: the reply can only be what it allows
        if grammar is not None:
            from llama_cpp import LlamaGrammar

            grammar = LlamaGrammar.from_string(grammar, verbose=False)
        prompt = template.render(messages, tools)
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        out = llm.create_completion(tokens, stop=[template.eos_token] if template.eos_token else [],
                                    temperature=overrides.get("temperature", temperature),
                                    max_tokens=overrides.get("max_tokens", max_tokens),
                                    repeat_penalty=repeat_penalty, seed=overrides.get("seed", 0),
                                    grammar=grammar)
        return out["choices"][0]["text"] or ""
    ask.llm, ask.template = llm, template  # benchmarks read token counts from it
    ask.grammars = True  # takes `grammar=` (finetune.plan_args.plan_grammar); network backends do not
    return ask


# -- transformers in-process ---------------------------------------------------------------------------------
def _hf(path: str, max_tokens: int, temperature: float, repeat_penalty: float) -> ChatFn:
    import torch

    from finetune.train.peft_backend import load_base
    from trader_core.runtime import configure_torch

    configure_torch()
    model, tok = load_base(path, dtype="float32")
    model.eval()

    def ask(messages: list[dict], tools: list[dict] | None = None, **overrides: Any) -> str:
        temperature_ = overrides.get("temperature", temperature)
        ids = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=overrides.get("max_tokens", max_tokens),
                                 do_sample=temperature_ > 0, temperature=temperature_ if temperature_ > 0 else None,
                                 top_p=None, top_k=None,
                                 repetition_penalty=repeat_penalty if repeat_penalty != 1.0 else None,
                                 pad_token_id=tok.pad_token_id)
        return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    ask.model, ask.tokenizer = model, tok
    return ask


# -- network -------------------------------------------------------------------------------------------------
def _ollama(model: str, max_tokens: int, temperature: float, repeat_penalty: float) -> ChatFn:
    def ask(messages: list[dict], tools: list[dict] | None = None, **overrides: Any) -> str:
        body = {"model": model, "messages": messages, "stream": False,
                "options": {"temperature": overrides.get("temperature", temperature),
                            "num_predict": overrides.get("max_tokens", max_tokens), "repeat_penalty": repeat_penalty}}
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

    def ask(messages: list[dict], tools: list[dict] | None = None, **overrides: Any) -> str:
        body = {"model": model, "messages": messages, "temperature": overrides.get("temperature", temperature),
                "max_tokens": overrides.get("max_tokens", max_tokens)}
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
