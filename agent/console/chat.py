"""`trader chat`: a Rich REPL over the agent.

Answers stream as they are written; tool calls are shown as they happen; a swap proposal asks y/N before
anything is sent. Ctrl+C cancels the running turn, a second Ctrl+C at the prompt (or EOF) quits; an error in
a turn is reported on one line and the loop goes on (hf CLI style).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import threading
from contextlib import contextmanager
from typing import Any

from rich.markup import escape

from agent.turn.facts import fact
from agent.market import PolicyView
from agent.turn.safety import TradeGate
from agent.turn.session import AgentConfig, build_agent
from agent.turn.tools import ToolCall
from onchain.models import SwapProposal
from trader_core.errors import TraderError

HELP = """commands:
  /price                      ETH price on the pool
  /quote buy|sell AMOUNT [ETH|USDC]   quote a swap (no trade)
  /signal                     the RL policy's signal
  /portfolio                  wallet balances
  /swap buy|sell AMOUNT [ETH|USDC]    propose a swap, then confirm y/N
  /trades                     the trade journal
  /model [SPEC]               show or switch the language model (auto, gguf:PATH, ollama:MODEL, ...)
  /help  /quit
anything else is a question for the agent."""


def _when(ts: Any) -> str:
    import time

    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(ts)))
    except (TypeError, ValueError):
        return str(ts or "")


def _num(x: Any) -> str:
    try:
        return f"{float(x):.6g}"
    except (TypeError, ValueError):
        return "-"


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def _ctrl_c_always_cancels():
    """SIGINT raises KeyboardInterrupt as usual, and is also remembered: when it lands inside a native callback
    (llama.cpp's log callback is Python called from C), ctypes prints the exception and drops it, and the turn
    would run on as if Ctrl+C had not been pressed."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield interrupted
        return

    def on_sigint(signum, frame):
        interrupted.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


class ChatREPL:
    """The interactive loop; `handle(line)` runs one input so tests can drive it without a terminal."""

    def __init__(self, config: AgentConfig, console=None, input_fn=input, chat=None, label: str = "custom"):
        from rich.console import Console

        self.console = console or Console(highlight=False)
        self.input = input_fn
        self.config = config
        self.agent = build_agent(config, confirm=self.confirm, notify=self.notice, chat=chat, label=label)
        self._streaming = False
        self.last = None  # the last TurnResult (tests and /model read it)

    # -- output ------------------------------------------------------------------------------------
    def notice(self, line: str) -> None:
        self.console.print(f"[yellow]{escape(line)}[/yellow]")

    def on_event(self, kind: str, payload: Any) -> None:
        if kind == "plan":
            self.console.print(f"[dim]plan: {escape(_short(payload))}[/dim]")
        elif kind == "tool_start":
            self.console.print(f"[cyan]→ {payload['name']}[/cyan] [dim]{escape(_short(payload['args']))}[/dim]")
        elif kind == "tool_end":
            self.show_call(payload)
        elif kind == "token":
            if not self._streaming:
                self.console.print("[bold green]trader>[/bold green] ", end="")
                self._streaming = True
            self.console.print(payload, end="", markup=False)
        elif kind == "notice":
            self.notice(str(payload))

    def show_call(self, call: ToolCall) -> None:
        if call.ok:
            line = fact(call) if call.name not in ("get_trades",) else ""
            detail = _short(call.result, 140) if call.name == "ask_trader_model" else ""
            if isinstance(call.value, PolicyView):  # its numbers in words: a forced HOLD has no vote to show
                v = call.value
                detail = (f"Q-margin {v.q_margin:+.3f}; " if v.voted else "") + (
                    f"data: {v.data}; {v.continuous_bars} continuous bars (the policy needs {v.needed_bars})")
            text = line if not line.startswith(call.name) else _short(call.result, 300)
            self.console.print(f"[green]✓ {call.name}[/green] {escape(text)}", highlight=False)
            if detail:
                self.console.print(f"  [dim]{escape(detail)}[/dim]")
        else:
            self.console.print(f"[red]✗ {call.name}: {escape(call.error or '')}[/red]")

    def confirm(self, proposal: SwapProposal) -> bool:
        """y/N for one proposal; anything but y (Enter, n, Ctrl+C, EOF) declines it (journalled `declined`)."""
        q = proposal.quote
        self.console.print(
            f"[bold]proposal {proposal.id}[/bold]: {q.side} {q.amount_in:g} {q.asset_in}"
            f" → ≥ {proposal.min_amount_out:.6g} {q.asset_out} on {q.venue}"
            f" (impact {proposal.price_impact_bps:.1f} bps, gas {proposal.gas_estimate})")
        try:
            reply = self.input("Execute this swap? [y/N] ")
        except (EOFError, KeyboardInterrupt):
            reply = ""
        ok = reply.strip().lower() in ("y", "yes")
        self.console.print("[green]confirmed[/green]" if ok else "[yellow]declined: nothing was sent[/yellow]")
        return ok

    # -- input -------------------------------------------------------------------------------------
    def turn(self, text: str) -> None:
        self._streaming = False
        try:
            with _ctrl_c_always_cancels() as interrupted:
                result = self.agent.turn(text, on_event=self.on_event)
                if interrupted.is_set():
                    raise KeyboardInterrupt  # the Ctrl+C landed where it was swallowed; the turn still ends cancelled
            self.last = result
        finally:
            if self._streaming:
                self.console.print()
            self._streaming = False

    def slash(self, line: str) -> bool:
        """Run a slash command; False means quit."""
        try:
            parts = shlex.split(line[1:])
        except ValueError as exc:
            self.console.print(f"[red]error: {escape(str(exc))}[/red]")
            return True
        cmd, args = (parts[0].lower(), parts[1:]) if parts else ("help", [])
        tools = self.agent.tools
        tools.begin_turn(TradeGate())  # a slash command trades only through /swap, opened below
        if cmd == "swap" and len(args) >= 2:
            try:
                tools.begin_turn(TradeGate.for_command(args[0].lower(), float(args[1]),
                                                       args[2] if len(args) > 2 else "ETH"))
            except ValueError:
                pass  # a bad amount: the tool's validation says so in one line
        if cmd in ("quit", "exit", "q"):
            return False
        if cmd == "help":
            self.console.print(HELP, markup=False)
        elif cmd == "model":
            if args:
                from finetune.llm_backends.chat_models import LLM

                self.agent.llm = LLM(args[0], base_url=self.config.base_url, notify=self.notice)
            self.console.print(f"model: {self.agent.llm.label}")
        elif cmd in ("price", "signal", "portfolio", "trades"):
            name = {"price": "get_price", "signal": "get_rl_signal", "portfolio": "get_portfolio",
                    "trades": "get_trades"}[cmd]
            self.show_trades(tools.call(name)) if cmd == "trades" else self.show_call(tools.call(name))
        elif cmd in ("quote", "swap"):
            if len(args) < 2:
                self.console.print(f"[red]usage: /{cmd} buy|sell AMOUNT \\[ETH|USDC][/red]")
                return True
            trade = {"side": args[0], "amount": args[1], "asset": args[2] if len(args) > 2 else "ETH"}
            if cmd == "quote":
                self.show_call(tools.call("get_quote", trade))
            else:
                proposal = tools.call("propose_swap", trade)
                self.show_call(proposal)
                if isinstance(proposal.value, SwapProposal) and proposal.value.risk.ok:
                    self.show_call(tools.call("execute_swap", {"proposal_id": proposal.value.id}))
        else:
            self.console.print(f"[red]unknown command /{escape(cmd)}; type /help[/red]")
        return True

    def show_trades(self, call: ToolCall) -> None:
        if not call.ok:
            return self.show_call(call)
        from rich.table import Table

        rows = call.result or []
        if not rows:
            self.console.print("no trades yet")
            return None
        table = Table("time (UTC)", "side", "in", "out", "status", "tx / reason")
        for t in rows:
            out = t.get("amount_out") if t.get("amount_out") is not None else t.get("quoted_out")
            table.add_row(_when(t.get("created_at")), str(t.get("side", "")),
                          f"{_num(t.get('amount_in'))} {t.get('asset_in', '')}",
                          f"{'' if t.get('amount_out') is not None else '~'}{_num(out)} {t.get('asset_out', '')}",
                          str(t.get("status", "")), str(t.get("tx_hash") or "")[:14] or str(t.get("reason") or "")[:50])
        self.console.print(table)
        return None

    def handle(self, line: str) -> bool:
        """One input line; exceptions are reported and the loop goes on. False means quit."""
        line = line.strip()
        if not line:
            return True
        try:
            if line.startswith("/"):
                return self.slash(line)
            self.turn(line)
        except KeyboardInterrupt:
            self.console.print("\n[yellow](turn cancelled)[/yellow]")
        except TraderError as exc:
            self.console.print(f"[red]error: {escape(str(exc))}[/red]")
        except Exception as exc:  # noqa: BLE001 - a bug in one turn must not end the session
            if os.environ.get("DEBUG"):
                raise
            self.console.print(f"[red]error: {type(exc).__name__}: {escape(str(exc))} "
                               "(set DEBUG=1 for a traceback)[/red]")
        return True

    def loop(self) -> None:
        self.console.print(f"[bold]trader chat[/bold] — model: {escape(self.agent.llm.label)}. "
                           "Type /help for commands, /quit or Ctrl+D to leave.")
        if not self.agent.tools.chain_up():
            self.console.print("[yellow]no chain is running: prices, quotes and swaps need `trader chain up` "
                               "(the RL signal works on the bundled data)[/yellow]")
        interrupted = False
        while True:
            try:
                line = self.input("you> ")
            except EOFError:
                self.console.print()
                break
            except KeyboardInterrupt:
                if interrupted:
                    self.console.print()
                    break
                interrupted = True
                self.console.print("\n[dim](Ctrl+C again or Ctrl+D to quit)[/dim]")
                continue
            interrupted = False
            if not self.handle(line):
                break
        self.console.print("bye")


def _history():
    """Readline history under trader_home() (best effort: readline is missing on some platforms)."""
    try:
        import readline
    except ImportError:  # pragma: no cover
        return None
    from trader_core.runtime import trader_home

    path = trader_home() / "chat_history"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            readline.read_history_file(path)
        readline.set_history_length(1000)
    except OSError:
        return None
    return lambda: readline.write_history_file(path)


def run_chat(config: AgentConfig) -> None:
    save = _history()
    repl = ChatREPL(config)
    try:
        repl.loop()
    finally:
        if save:
            try:
                save()
            except OSError:
                pass
