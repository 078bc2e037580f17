"""`trader chat` driven as a user would, in a pty (pexpect), on the real chain, policy, journal and SmolLM2."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.agent.conftest import journal_rows
from tests.conftest import HANG_S

TRADER = Path(sys.executable).parent / "trader"


def _spawn(home, *args, **extra_env):
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "TRADER_HOME": str(home), "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200",
           "OLLAMA_HOST": os.environ.get("OLLAMA_HOST", "http://127.0.0.1:9"), **extra_env}
    # Ctrl+C as at a terminal, even when the test run itself was started in the background (SIGINT ignored)
    child = pexpect.spawn(str(TRADER), ["chat", *args], env=env, encoding="utf-8", timeout=HANG_S,
                          dimensions=(60, 200), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    child.expect("model: ")
    return child, pexpect


@pytest.mark.chain
@pytest.mark.llm
@pytest.mark.slow
def test_user_asks_proposes_declines_proposes_confirms_and_sees_the_trade(chain_home):
    child, pexpect = _spawn(chain_home)
    try:
        child.expect("you> ")
        child.sendline("what is the ETH price?")
        child.expect("✓ get_price")
        child.expect("trader> ")
        child.expect("you> ")

        child.sendline("sell 0.15 ETH")
        child.expect(r"Execute this swap\? \[y/N\] ")
        child.sendline("n")
        child.expect("declined: nothing was sent")
        child.expect("you> ")

        child.sendline("sell 0.15 ETH")
        child.expect(r"Execute this swap\? \[y/N\] ")
        child.sendline("y")
        child.expect("confirmed")
        child.expect("✓ execute_swap")
        child.expect("you> ")

        child.sendline("/trades")
        child.expect("confirmed")
        child.expect("you> ")
        child.sendeof()
        child.expect("bye")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    mine = [r for r in journal_rows() if r["amount_in"] == pytest.approx(0.15) and r["side"] == "sell"]
    assert sorted(r["status"] for r in mine) == ["confirmed", "declined"]  # the declined one was never sent
    assert (chain_home / "chat_history").exists()


def _interrupt_at_prompt(child, pexpect, reply: str) -> None:
    """Ctrl+C at the `you> ` prompt, expecting `reply`. A SIGINT that lands while input() is setting up readline,
    before readline waits on the terminal, is only handled once a key arrives (CPython's readline: the signal does
    not interrupt a wait that has not started yet); a person presses Ctrl+C again, and so does this, but only when
    the REPL showed no sign of the first one (any other reaction fails the test)."""
    child.expect("you> ")
    for _ in range(5):
        child.sendintr()
        if child.expect([reply, "Ctrl\\+C again", "bye", pexpect.TIMEOUT], timeout=20) == 0:
            return
        assert child.after is pexpect.TIMEOUT, f"expected {reply!r} after Ctrl+C, got {child.after!r}"
    raise AssertionError(f"five Ctrl+C at the prompt never gave {reply!r}")


@pytest.fixture
def held_trader_model():
    """An OpenAI-compatible endpoint that takes a chat completion and does not answer (for up to its client's 30 s
    timeout): the trader model's call is certainly still running when the test's Ctrl+C arrives. (With SmolLM2
    answering, a busy machine let the short answer finish first and the Ctrl+C landed at the next prompt.)"""
    release, asked = threading.Event(), []

    class Held(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            asked.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            release.wait(HANG_S)
            self.send_response(503)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Held)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield asked, {"TRADER_TRADER_LLM": "openai:held-trader-model", "OPENAI_API_KEY": "not-a-secret",
                      "OPENAI_BASE_URL": f"http://127.0.0.1:{server.server_port}/v1"}
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.mark.chain
@pytest.mark.llm
def test_ctrl_c_cancels_a_turn_twice_quits_and_slash_commands_work(chain_home, held_trader_model):
    asked, env = held_trader_model
    child, pexpect = _spawn(chain_home, **env)
    try:
        child.expect("you> ")
        child.sendline("explain why the policy says that")  # RL signal, then the trader model (held) is asked
        child.expect("→ ask_trader_model")
        deadline = time.monotonic() + HANG_S
        while not asked and time.monotonic() < deadline:  # the trader model's request is in flight, and held
            time.sleep(0.05)
        assert asked == ["/v1/chat/completions"]
        child.sendintr()
        child.expect("turn cancelled")
        child.expect("you> ")
        child.sendline("/price")  # the session goes on after a cancelled turn
        child.expect("✓ get_price ETH is")
        child.expect("you> ")
        child.sendline("/help")
        child.expect("/portfolio")
        child.expect("you> ")
        child.sendline("/quote sell abc")
        child.expect("invalid arguments for get_quote")  # a bad argument is a message; the loop goes on
        child.expect("you> ")
        child.sendline("/nope")
        child.expect("unknown command /nope")
        _interrupt_at_prompt(child, pexpect, "Ctrl\\+C again")
        _interrupt_at_prompt(child, pexpect, "bye")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # ctypes reports the dropped exception
def test_ctrl_c_swallowed_by_a_native_callback_still_cancels_the_turn(monkeypatch):
    """The pty test's flake: SIGINT handled while llama.cpp was inside its (Python) log callback; ctypes dropped
    the KeyboardInterrupt, the answer was printed and the Ctrl+C was lost."""
    import ctypes

    from rich.console import Console

    from agent.console.chat import ChatREPL
    from agent.turn.session import AgentConfig
    from tests.agent.conftest import scripted

    out = io.StringIO()
    repl = ChatREPL(AgentConfig(router="model"), console=Console(file=out, width=200, color_system=None),
                    chat=scripted("hello"))

    @ctypes.CFUNCTYPE(None)
    def native_log_callback():
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the Python handler runs here, inside the callback
            pass

    def turn_that_calls_native_code(text, on_event=None):
        native_log_callback()
        return "an answer that must not count"

    monkeypatch.setattr(repl.agent, "turn", turn_that_calls_native_code)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal (a background run ignores it)
    try:
        assert repl.handle("explain the signal") is True
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "turn cancelled" in out.getvalue()
    assert repl.last != "an answer that must not count"
    assert repl.handle("/quit") is False


def test_an_exception_in_a_turn_is_reported_and_the_loop_goes_on(monkeypatch):
    from rich.console import Console

    from agent.console.chat import ChatREPL
    from agent.turn.session import AgentConfig
    from tests.agent.conftest import scripted

    out = io.StringIO()
    repl = ChatREPL(AgentConfig(router="model"), console=Console(file=out, width=200, color_system=None),
                    chat=scripted("hello"))

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(repl.agent, "turn", boom)
    assert repl.handle("hi") is True
    assert "error: RuntimeError: disk on fire" in out.getvalue()
    assert repl.handle("/quit") is False
