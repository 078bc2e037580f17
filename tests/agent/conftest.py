"""Agent tests run against real tools: one anvil replica for the session (TRADER_HOME in a tmp dir, always
stopped), the bundled trained policy, the real SQLite journal. Only the chat model's *choices* are scripted.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from tests.conftest import CLEAN_ENV, replica_chain, seeded_home


@pytest.fixture(scope="session")
def chain_home(tmp_path_factory, replica_build_home):
    """A real replica chain for the whole session (loaded from the session's replica build); always stopped."""
    with replica_chain(seeded_home(replica_build_home, tmp_path_factory.mktemp("agent_home"))) as home:
        yield home


@pytest.fixture(scope="session")
def history_chain(chain_home):
    """A private replica whose V2 pool walked real hourly closes (real swaps at hourly block times): the default
    policy's look-back and a few more bars."""
    from rl.policy import Policy
    from tests.chain_history import replica_with_history

    hours = Policy.load("default").config.features.lookback + 4
    with replica_with_history(chain_home, hours=hours) as chain_stamps_closes:
        yield chain_stamps_closes


@pytest.fixture(autouse=True)
def _home(request, monkeypatch, tmp_path):
    """Every agent test has TRADER_HOME set: the session chain's home if it needs the chain."""
    home = request.getfixturevalue("chain_home") if "chain_home" in request.fixturenames else tmp_path
    monkeypatch.setenv("TRADER_HOME", str(home))
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    if "OLLAMA_HOST" not in __import__("os").environ:
        monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # discard port: nothing listens
    # a fine-tune run left in ./runs would otherwise become the `auto` model of these tests
    monkeypatch.setenv("TRADER_GGUF", "none")
    yield


class ScriptedChat(BaseChatModel):
    """A chat model whose choices are a script: each call pops the next entry.

    dict -> a call of the bound tool (forced `plan`) with those arguments; AIMessage -> returned as is
    (native tool calls); str -> a text answer. Every call's messages are recorded in `seen`.
    """

    script: list = []
    seen: list = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools, *, tool_choice=None, **kwargs):
        from langchain_core.utils.function_calling import convert_to_openai_tool

        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        self.seen.append(list(messages))
        if not self.script:
            raise AssertionError("the scripted model ran out of script")
        entry = self.script.pop(0)
        if isinstance(entry, dict):
            name = kwargs.get("tool_choice") or "plan"
            msg = AIMessage(content="", tool_calls=[{"name": name, "args": entry, "id": f"c{uuid.uuid4().hex[:6]}",
                                                     "type": "tool_call"}])
        elif isinstance(entry, AIMessage):
            msg = entry
        else:
            msg = AIMessage(content=str(entry))
        return ChatResult(generations=[ChatGeneration(message=msg)])


def scripted(*entries: Any) -> ScriptedChat:
    return ScriptedChat(script=list(entries), seen=[])


@pytest.fixture
def make_agent(chain_home):
    """An Agent over real tools with a scripted model; `confirm` answers proposals (None: never asked)."""
    from agent.turn.session import AgentConfig, build_agent

    def make(*entries, confirm=None, mode="plan", notes=None):
        chat = scripted(*entries)
        agent = build_agent(AgentConfig(mode=mode, router="model"), confirm=confirm, chat=chat, label="scripted",
                            notify=(notes.append if notes is not None else None))
        return agent, chat

    return make


def journal_rows():
    from onchain.api import Journal

    j = Journal()
    try:
        return j.list_trades()
    finally:
        j.close()


def dumps(obj) -> str:
    return json.dumps(obj, default=str)


@pytest.fixture(scope="session")
def openai_server():
    """llama-cpp-python's OpenAI-compatible server on a free port, serving the real SmolLM2 GGUF; always stopped."""
    import socket
    import subprocess
    import sys
    import time

    for module in ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings"):
        pytest.importorskip(module, reason="llama-cpp-python's server extra is not installed")
    import httpx

    from finetune.llm_backends.chat_models import smollm2_path
    from onchain.node.process import pid_listens_on

    def start() -> tuple[subprocess.Popen, int]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()),
                                 "--chat_format", "chatml-function-calling", "--host", "127.0.0.1", "--port",
                                 str(port), "--n_ctx", "2048", "--n_threads", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port

    # The server binds the port itself, so another process may take it after we picked it: the server then
    # exits, and a new port is picked. The deadline only guards against a hang (a loaded box starts it slowly).
    proc, port = start()
    tries = 1
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).raise_for_status()
                if proc.poll() is None and pid_listens_on(proc.pid, port):  # ours, not whoever took the port
                    break
            except Exception:
                if time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not start")
            if proc.poll() is not None:
                if tries == 5:
                    pytest.fail(f"llama_cpp.server exited with code {proc.returncode} on {tries} ports")
                proc, port = start()
                tries += 1
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
