"""`trader finetune ollama`: the Modelfile (from prompts/Modelfile.template) and, when a server answers,
registration through the `ollama` client; otherwise the exact `ollama create` command to run.

The Modelfile keeps Qwen's chat template with tools for `ollama run` and /api/chat users (the `plan` tool
written as trained, other tools and tool-call arguments as JSON through Ollama's `json` template function), the
stop tokens, and says which base the model really is. The agent itself asks in raw mode (ollama_raw). A model built as base + GGUF LoRA is exported the same way
(`FROM` the base, `ADAPTER` the LoRA).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from pydantic import BaseModel, Field

from finetune.formats import SYSTEM_PROMPT
from finetune.plan_call import PLAN_TOOL
from finetune.llm_backends.runtime import ollama_answers, ollama_host
from trader_core.config import save_config
from trader_core.errors import ConfigError, LLMError

CONFIG = "ollama_config.json"
STOPS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")


class OllamaConfig(BaseModel):
    gguf: str = Field(..., description="The quantized GGUF to serve (or the base, with `adapter`).")
    adapter: str | None = Field(None, description="A GGUF LoRA applied on top of `gguf` (Modelfile ADAPTER).")
    name: str = Field("trader-qwen-rl", description="Ollama model name.")
    base_name: str = Field("Qwen2.5-Coder-0.5B-Instruct", description="The real base model, said in the Modelfile.")
    out: str | None = Field(None, description="Folder for the Modelfile; default: beside the GGUF.")
    temperature: float = 0.0  # greedy: the ladder's agreement and routing were measured greedy
    top_p: float = 0.9
    top_k: int = 40
    repeat_penalty: float = 1.0  # the ladder was evaluated without one; a penalty bends tool-call digits
    num_ctx: int = 4096
    try_register: bool = Field(True, description="Register with the server when one answers.")


class OllamaResult(BaseModel):
    modelfile: str
    registered: bool
    command: str
    message: str


def render_modelfile(config: OllamaConfig) -> str:
    from prompts import render_prompt

    adapter = f"ADAPTER {Path(config.adapter).resolve()}\n" if config.adapter else ""
    # the `plan` tool as Qwen's template printed it in training (`tojson`: ", " and ": ", insertion order)
    plan_tool = json.dumps(PLAN_TOOL, ensure_ascii=False)
    return render_prompt("Modelfile.template", gguf=str(Path(config.gguf).resolve()), system=SYSTEM_PROMPT,
                         plan_tool=plan_tool,
                         adapter=adapter, model_name=config.name, base=config.base_name,
                         temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
                         repeat_penalty=config.repeat_penalty, num_ctx=config.num_ctx)


def _template_of(modelfile: str) -> str:
    found = re.search(r'TEMPLATE """(.*?)"""', modelfile, re.S)
    return found.group(1) if found else ""


def write_modelfile(config: OllamaConfig) -> OllamaResult:
    """Write the Modelfile; register it when an Ollama server answers at OLLAMA_HOST."""
    if not Path(config.gguf).exists():
        raise ConfigError(f"GGUF {config.gguf} does not exist; run `trader finetune quantize` first")
    if config.adapter and not Path(config.adapter).exists():
        raise ConfigError(f"GGUF LoRA {config.adapter} does not exist; convert the adapter first")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/-]*", config.name):
        raise ConfigError(f"bad Ollama model name {config.name!r}; use letters, digits, '-', '_', '.', ':'")
    out = Path(config.out) if config.out else Path(config.gguf).parent
    text = render_modelfile(config)
    path = out / "Modelfile"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    save_config(config, out, CONFIG)
    command = f"ollama create {config.name} -f {shlex.quote(str(path.resolve()))}"
    if not config.try_register or not ollama_answers():
        return OllamaResult(modelfile=str(path), registered=False, command=command,
                            message=f"no Ollama server answers at {ollama_host()}; register it with: {command}")
    try:
        import ollama
    except ImportError:
        return OllamaResult(modelfile=str(path), registered=False, command=command,
                            message=f"the ollama client is not installed (pip install ollama); run: {command}")
    client = ollama.Client(host=ollama_host())
    try:
        digest = client.create_blob(Path(config.gguf))
        adapters = {Path(config.adapter).name: client.create_blob(Path(config.adapter))} if config.adapter else None
        client.create(model=config.name, files={Path(config.gguf).name: digest}, adapters=adapters,
                      template=_template_of(text), system=SYSTEM_PROMPT,
                      parameters={"temperature": config.temperature, "top_p": config.top_p, "top_k": config.top_k,
                                  "repeat_penalty": config.repeat_penalty, "num_ctx": config.num_ctx,
                                  "stop": list(STOPS)}, stream=False)
    except Exception as exc:  # the client raises httpx and ResponseError types; one line is what helps
        raise LLMError(f"Ollama at {ollama_host()} refused {config.name}: {exc}; or run: {command}") from None
    return OllamaResult(modelfile=str(path), registered=True, command=command,
                        message=f"registered {config.name} with Ollama at {ollama_host()}")
