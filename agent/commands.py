"""The agent's own `trader` commands: `chat`, `ask`, `run` and `trader bench agent`. Parsing only."""

from __future__ import annotations

import typer

LLM_HELP = ("auto | gguf:PATH | ollama:MODEL | openai:MODEL | mlx:PATH "
            "(auto: Ollama trader-qwen-rl, the project GGUF, SmolLM2)")


def _config(cls, **values):
    from trader_core.config import resolve_config

    return resolve_config(cls, values)


def chat(
    llm: str = typer.Option("auto", "--llm", help=LLM_HELP),
    base_url: str = typer.Option(None, "--base-url", help="base URL for --llm openai:MODEL"),
    rpc_url: str = typer.Option(None, "--rpc-url", help="chain RPC (default: the chain `trader chain up` started)"),
    policy: str = typer.Option("default", "--policy", help="'default' or a training run directory"),
    native_tools: bool = typer.Option(False, "--native-tools", help="let a capable model call tools itself"),
) -> None:
    """Chat with the trading agent (Rich REPL; /help lists the slash commands)."""
    from agent.chat import run_chat
    from agent.session import AgentConfig

    run_chat(_config(AgentConfig, llm=llm, base_url=base_url, rpc_url=rpc_url, policy=policy,
                     mode="native" if native_tools else "plan"))


def ask(
    question: str = typer.Argument(..., help="the question, in quotes"),
    json_out: bool = typer.Option(False, "--json", help="print {answer, model, tool_calls, proposal} as JSON"),
    yes: bool = typer.Option(False, "--yes", help="execute a proposed swap without asking (scripted use)"),
    llm: str = typer.Option("auto", "--llm", help=LLM_HELP),
    base_url: str = typer.Option(None, "--base-url", help="base URL for --llm openai:MODEL"),
    rpc_url: str = typer.Option(None, "--rpc-url", help="chain RPC (default: the chain `trader chain up` started)"),
    policy: str = typer.Option("default", "--policy", help="'default' or a training run directory"),
) -> None:
    """Ask the agent one question, non-interactively."""
    from agent.ask import ask_once, print_events
    from agent.session import AgentConfig
    from trader_core.cli_utils import print_json

    cfg = _config(AgentConfig, llm=llm, base_url=base_url, rpc_url=rpc_url, policy=policy)
    result = ask_once(question, cfg, yes=yes, on_event=None if json_out else print_events)
    if json_out:
        print_json(result.public())
    else:
        print()
        if result.proposal and not result.executed:
            typer.echo(f"(proposal {result.proposal['id']} was not executed: rerun with --yes or use `trader chat`)",
                       err=True)


def run(
    interval: str = typer.Option("10s", "--interval", help="time between ticks, e.g. 10s, 1m"),
    iterations: int = typer.Option(10, "--iterations", help="number of ticks"),
    execute: bool = typer.Option(False, "--execute", help="send guarded swaps to the local chain"),
    observe: bool = typer.Option(False, "--observe", help="decide and journal only, no trades"),
    trade_eth: float = typer.Option(0.1, "--trade-eth", help="size of one trade in ETH"),
    no_model: bool = typer.Option(False, "--no-model", help="skip the trader model's opinion"),
    llm: str = typer.Option("auto", "--llm", help=LLM_HELP),
    rpc_url: str = typer.Option(None, "--rpc-url", help="chain RPC"),
    policy: str = typer.Option("default", "--policy", help="'default' or a training run directory"),
    out: str = typer.Option(None, "--out", help="run directory (config.json + decisions.jsonl)"),
    json_out: bool = typer.Option(False, "--json", help="print the decisions as JSON at the end"),
) -> None:
    """Autonomous loop: RL signal + trader model -> decision -> paper trade / guarded swap -> journal."""
    from agent.autopilot import RunConfig, run_agent
    from trader_core.cli_utils import print_json
    from trader_core.market_data import parse_interval

    cfg = _config(RunConfig, interval_s=parse_interval(interval), iterations=iterations, execute=execute,
                  observe=observe, trade_eth=trade_eth, ask_model=not no_model, llm=llm, rpc_url=rpc_url,
                  policy=policy, out=out)

    def show(d):
        if not json_out:
            extra = f" tx {d.tx_hash[:12]}" if d.tx_hash else (f" ({d.detail})" if d.detail else "")
            typer.echo(f"tick {d.tick}: {d.action} {d.size_eth:g} ETH @ {d.price:.2f} [{d.mode}/{d.status}] "
                       f"by {d.decided_by}: {d.reason}{extra}")

    decisions = run_agent(cfg, emit=show)
    if json_out:
        print_json([d.model_dump() for d in decisions])


def bench_agent(
    turns: int = typer.Option(20, "--turns", help="turns to time"),
    json_out: bool = typer.Option(False, "--json", help='print {"turn_overhead_ms", "tokens_per_s", ...}'),
) -> None:
    """Per-turn overhead without the LLM (tools + glue) vs direct API calls, and embedded tokens/s."""
    from agent.bench import bench_agent as run_bench
    from trader_core.cli_utils import print_json

    r = run_bench(turns=turns)
    if json_out:
        print_json(r.model_dump())
        return
    typer.echo(f"turn overhead {r.turn_overhead_ms:.2f} ms per turn (tools + glue, no LLM) vs {r.direct_ms:.2f} ms "
               f"for the same calls made directly: ratio {r.overhead_ratio:.2f}x (target < 100 ms)")
    typer.echo("  by intent (median ms): " + ", ".join(f"{k} {v:.2f}" for k, v in r.by_intent_ms.items()))
    typer.echo(f"{r.model}: {r.tokens_per_s:.1f} tokens/s")


top_level_commands = [chat, ask, run]
bench_commands = {"agent": bench_agent}
