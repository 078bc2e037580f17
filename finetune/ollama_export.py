"""`trader finetune ollama`: the Modelfile (from prompts/Modelfile.template) and, when a server answers,
registration through the `ollama` client; otherwise the exact `ollama create` command to run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from pydantic import BaseModel, Field

from finetune.formats import SYSTEM_PROMPT
from finetune.llm import ollama_answers, ollama_host
from trader_core.config import save_config
from trader_core.errors import ConfigError, LLMError

CONFIG = "ollama_config.json"


class OllamaConfig(BaseModel):
    gguf: str = Field(..., description="The quantized GGUF to serve.")
    name: str = Field("trader-qwen-rl", description="Ollama model name.")
    out: str | None = Field(None, description="Folder for the Modelfile; default: beside the GGUF.")
    temperature: float = 0.25
    top_p: float = 0.9
    top_k: int = 40
    repeat_penalty: float = 1.1
    num_ctx: int = 4096
    try_register: bool = Field(True, description="Register with the server when one answers.")


class OllamaResult(BaseModel):
    modelfile: str
    registered: bool
    command: str
    message: str


def render_modelfile(config: OllamaConfig) -> str:
    from prompts import render_prompt

    return render_prompt("Modelfile.template", gguf=str(Path(config.gguf).resolve()), system=SYSTEM_PROMPT,
                         temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
                         repeat_penalty=config.repeat_penalty, num_ctx=config.num_ctx)


def _template_of(modelfile: str) -> str:
    found = re.search(r'TEMPLATE """(.*?)"""', modelfile, re.S)
    return found.group(1) if found else ""


def write_modelfile(config: OllamaConfig) -> OllamaResult:
    """Write the Modelfile; register it when an Ollama server answers at OLLAMA_HOST."""
    if not Path(config.gguf).exists():
        raise ConfigError(f"GGUF {config.gguf} does not exist; run `trader finetune quantize` first")
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
        client.create(model=config.name, files={Path(config.gguf).name: digest}, template=_template_of(text),
                      system=SYSTEM_PROMPT,
                      parameters={"temperature": config.temperature, "top_p": config.top_p, "top_k": config.top_k,
                                  "repeat_penalty": config.repeat_penalty, "num_ctx": config.num_ctx,
                                  "stop": ["<|im_end|>", "<|im_start|>"]}, stream=False)
    except Exception as exc:  # the client raises httpx and ResponseError types; one line is what helps
        raise LLMError(f"Ollama at {ollama_host()} refused {config.name}: {exc}; or run: {command}") from None
    return OllamaResult(modelfile=str(path), registered=True, command=command,
                        message=f"registered {config.name} with Ollama at {ollama_host()}")
