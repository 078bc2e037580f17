"""The prompt a model was trained on: its own Jinja chat template (GGUF metadata), rendered for messages + tools.

One function renders it for every path that runs the trader model, so they send the same bytes: the in-process
llama.cpp `ask` (finetune.llm_backends.runtime) and the raw-mode Ollama client (finetune.llm_backends.ollama_raw).
It is built exactly as llama-cpp-python builds its own handler for `chat_format=None` (the template string from
`tokenizer.chat_template`, the BOS/EOS token texts, its `Jinja2ChatFormatter` with Transformers' `tojson`), so
the text equals what llama.cpp rendered before and what `apply_chat_template` rendered in training.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trader_core.errors import ConfigError, DependencyMissing, ModelError


@dataclass(frozen=True)
class ChatTemplate:
    """A model's chat template and the special tokens it refers to."""

    source: str  # the Jinja text of `tokenizer.chat_template`
    bos_token: str
    eos_token: str
    _formatter: list = field(default_factory=list, repr=False, compare=False)  # built once, on first render

    @classmethod
    def of(cls, llama: Any) -> "ChatTemplate":
        """The template of a loaded llama_cpp.Llama, read as Llama.__init__ reads it for its own handler."""
        source = (getattr(llama, "metadata", None) or {}).get("tokenizer.chat_template")
        if not source:
            raise ModelError("the GGUF has no tokenizer.chat_template; it cannot be asked in its trained format")
        eos, bos = llama.token_eos(), llama.token_bos()
        text = llama._model.token_get_text  # the same call llama-cpp-python makes for its handler
        return cls(source, bos_token=text(bos) if bos != -1 else "", eos_token=text(eos) if eos != -1 else "")

    @classmethod
    def from_gguf(cls, path: str | Path) -> "ChatTemplate":
        """The template stored in a GGUF file, read from its metadata and vocabulary only (no weights, ~1 s)."""
        path = Path(path).expanduser()
        key = (str(path.resolve()), path.stat().st_mtime_ns) if path.is_file() else None
        if key is None:
            raise ConfigError(f"GGUF file {path} does not exist")
        with _LOCK:
            if key not in _FROM_FILE:
                _FROM_FILE[key] = cls.of(_vocab_only(path))
            return _FROM_FILE[key]

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        """The prompt text for `messages` (+ `tools`), ending with the assistant's opening, as in training."""
        if not self._formatter:
            try:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter
            except ImportError as exc:
                raise DependencyMissing(f"llama-cpp-python is not installed ({exc}); "
                                        "pip install llama-cpp-python==0.3.36") from None
            self._formatter.append(Jinja2ChatFormatter(self.source, eos_token=self.eos_token,
                                                       bos_token=self.bos_token))
        return self._formatter[0](messages=messages, tools=tools).prompt


_LOCK = threading.Lock()
_FROM_FILE: dict[tuple, ChatTemplate] = {}


def _vocab_only(path: Path):
    try:
        import llama_cpp
    except ImportError as exc:
        raise DependencyMissing(f"llama-cpp-python is not installed ({exc}); "
                                "pip install llama-cpp-python==0.3.36") from None
    from trader_core.native_logs import quiet_fds

    try:
        with quiet_fds():
            return llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot read the chat template of {path.name}: {exc}") from None
