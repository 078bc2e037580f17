"""The agent's own `trader` commands: `chat`, `ask`, `run`, `signal` and `trader bench agent`. Parsing only."""

from __future__ import annotations

import typer

LLM_HELP = ("auto | gguf:PATH | ollama:MODEL | openai:MODEL | mlx:PATH "
            "(auto: Ollama trader-qwen-rl, else trader-qwen-rl in-process, else SmolLM2)")


def _config(cls, **values):
    from trader_core.config import resolve_config

    return resolve_config(cls, values)


def _quiet() -> None:
    """The commands a person reads: library logs and progress bars go to $TRADER_HOME/logs/native.log."""
    from trader_core.native_logs import quiet_terminal

    quiet_terminal()


def chat(
    llm: str = typer.Option("auto", "--llm", help=LLM_HELP),
    base_url: str = typer.Option(None, "--base-url", help="base URL for --llm openai:MODEL"),
    rpc_url: str = typer.Option(None, "--rpc-url", help="chain RPC (default: the chain `trader chain up` started)"),
    policy: str = typer.Option("default", "--policy", help="'default' or a training run directory"),
    native_tools: bool = typer.Option(False, "--native-tools", help="let a capable model call tools itself"),
) -> None:
    """Chat with the trading agent (Rich REPL; /help lists the slash commands)."""
    _quiet()
    from agent.console.chat import run_chat
    from agent.turn.session import AgentConfig

    run_chat(_config(AgentConfig, llm=llm, base_url=base_url, rpc_url=rpc_url, policy=policy,
                     mode="native" if native_tools else "plan"))


def ask(
    question: str = typer.Argument(..., help="the question, in quotes"),
    json_out: bool = typer.Option(False, "--json", help="print {answer, model, plan, tool_calls, proposal, safety} as JSON"),
    yes: bool = typer.Option(False, "--yes", help="execute an explicit order in the question (\"sell 0.5 ETH\") "
                             "without asking; questions, negations and hypotheticals never trade"),
    llm: str = typer.Option("auto", "--llm", help=LLM_HELP),
    base_url: str = typer.Option(None, "--base-url", help="base URL for --llm openai:MODEL"),
    rpc_url: str = typer.Option(None, "--rpc-url", help="chain RPC (default: the chain `trader chain up` started)"),
    policy: str = typer.Option("default", "--policy", help="'default' or a training run directory"),
) -> None:
    """Ask the agent one question, non-interactively."""
    _quiet()
    from agent.console.ask import ask_once, print_events
    from agent.turn.session import AgentConfig
    from trader_core.cli_utils import print_json

    cfg = _config(AgentConfig, llm=llm, base_url=base_url, rpc_url=rpc_url, policy=policy)
    result = ask_once(question, cfg, yes=yes, on_event=None if json_out else print_events)
    if json_out:
        print_json(result.public())
    else:
        print()
        if result.proposal and not result.executed and not yes:
            typer.echo(f"(proposal {result.proposal['id']} was not executed: rerun with --yes or use `trader chat`)",
                       err=True)


def run(
    interval: str = typer.Option(None, "--interval", help="time between ticks, e.g. 10s, 1m [10s live, 0 replay]"),
    iterations: int = typer.Option(10, "--iterations", help="number of ticks"),
    execute: bool = typer.Option(False, "--execute", help="send guarded swaps to the local chain"),
    observe: bool = typer.Option(False, "--observe", help="decide and journal only, no trades"),
    paper: bool = typer.Option(False, "--paper", help="paper trades (the default without --execute/--observe)"),
    learn: bool = typer.Option(False, "--learn", help="learn online from every fill: replay store, prioritised "
                               "replay, learner thread, promotion gate (rerun with the same --out to resume)"),
    gate_window: int = typer.Option(72, "--gate-window", help="--learn: bars in the gate's held-out window"),
    learn_history: int = typer.Option(5000, "--learn-history", help="--learn: training-data transitions mixed in"),
    candidate_every: int = typer.Option(1000, "--candidate-every", help="--learn: learner steps per candidate"),
    learner_nice: int = typer.Option(10, "--learner-nice", help="--learn: niceness of the learner process, 0-19 "
                                     "(10: the decision loop comes first on busy cores)"),
    trade_eth: float = typer.Option(0.1, "--trade-eth", help="size of one trade in ETH"),
    no_model: bool = typer.Option(False, "--no-model", help="skip the trader model's opinion"),
    feed: str = typer.Option("auto", "--feed", help="auto | chain | replay | chain-replay (auto: the chain if one "
                             "answers, else a replay of the policy's data, one bar per tick; chain-replay: the "
                             "data's real closes swapped into the local replica, one hour of block time per tick)"),
    data: str = typer.Option(None, "--data", help="dataset or CSV for --feed replay / chain-replay (default: the "
                             "policy's)"),
    llm: str = typer.Option("auto", "--llm", help=LLM_HELP),
    rpc_url: str = typer.Option(None, "--rpc-url", help="chain RPC"),
    policy: str = typer.Option("default", "--policy", help="'default' or a training run directory"),
    out: str = typer.Option(None, "--out", help="new run folder (config.json + decisions.jsonl)"),
    json_out: bool = typer.Option(False, "--json", help="print the decisions as JSON at the end"),
) -> None:
    """Autonomous loop: RL signal + trader model -> decision -> paper trade / guarded swap -> journal."""
    _quiet()
    from agent.loop.autopilot import RunConfig, parse_duration, run_agent
    from trader_core.cli_utils import print_json
    from trader_core.errors import ConfigError

    if paper and (execute or observe):
        raise ConfigError("--paper excludes --execute and --observe; pick one mode")
    cfg = _config(RunConfig, interval_s=parse_duration(interval), iterations=iterations, execute=execute,
                  observe=observe, trade_eth=trade_eth, ask_model=not no_model, feed=feed, data=data, llm=llm,
                  rpc_url=rpc_url, policy=policy, out=out, learn=learn, gate_window=gate_window,
                  learn_history=learn_history, candidate_every=candidate_every,
                  learner_nice=learner_nice)

    def show(d):
        if not json_out:
            extra = f" tx {d.tx_hash[:12]}" if d.tx_hash else (f" ({d.detail})" if d.detail else "")
            typer.echo(f"tick {d.tick}: {d.action} {d.size_eth:g} ETH @ {d.price:.2f} [{d.mode}/{d.status}] "
                       f"by {d.decided_by}: {d.reason}{extra}")

    decisions = run_agent(cfg, emit=show)
    if json_out:
        print_json([d.model_dump() for d in decisions])


def signal(
    position: float = typer.Option(None, "--position", help="fraction of the portfolio in ETH, 0..1 "
                                   "(default: the chain wallet's, flat without a chain)"),
    rpc_url: str = typer.Option(None, "--rpc-url", help="chain RPC (default: the chain `trader chain up` started)"),
    policy: str = typer.Option("default", "--policy", help="'default' or a training run directory"),
    json_out: bool = typer.Option(False, "--json", help="print the signal, its bar time and data source as JSON"),
) -> None:
    """The policy's signal on the live market: the chain's candles continuing its history, with their age."""
    import math

    from agent.market import human_duration, policy_signal, utc, vote_words, wallet_words
    from agent.turn.tools import ToolSession
    from trader_core.cli_utils import print_json
    from trader_core.errors import ConfigError

    if position is not None and not (math.isfinite(position) and 0.0 <= position <= 1.0):
        raise ConfigError(f"--position must be a fraction of the portfolio in ETH from 0 to 1, got {position}")
    tools = ToolSession(rpc_url=rpc_url, policy=policy)
    snapshot = tools.feed().read()
    if position is None:  # the wallet and the bar are read once: the line below tells one story
        view = tools.signal_on(snapshot)
    else:
        view = policy_signal(tools.policy, snapshot, position, "given by --position")
    if json_out:
        print_json(view.model_dump(mode="json"))
        return
    age = "current bar" if not view.bar_age_s else f"closed {human_duration(view.bar_age_s)} ago"
    typer.echo(f"{view.action} ({vote_words(view)}) at {view.price:,.2f} for the bar of "
               f"{utc(view.bar_time)} ({age}); wallet {wallet_words(view)} ({view.wallet})")
    if view.reason:
        typer.echo(f"holds because {view.reason}")
    typer.echo(f"data: {view.data}; {view.continuous_bars} continuous bars from {utc(view.first_bar_time)} "
               f"(the policy needs {view.needed_bars})"
               + (f"; the chain's own from {utc(view.live_first_bar_time)}" if view.live_first_bar_time else ""))
    if view.about:
        typer.echo(f"policy: {view.about}")


def bench_agent(
    turns: int = typer.Option(20, "--turns", help="turns to time"),
    llm: str = typer.Option("auto", "--llm", help=LLM_HELP + "; 'none' skips the whole-turn timing"),
    llm_turns: int = typer.Option(8, "--llm-turns", help="whole turns (plan + tools + answer) to time"),
    json_out: bool = typer.Option(False, "--json", help='print {"turn_overhead_ms", "tokens_per_s", "llm_turns", ...}'),
) -> None:
    """Per-turn overhead without the LLM (tools + glue) vs direct API calls, embedded tokens/s, and whole turns
    (plan + tools + answer) with the --llm model: p50 against the 3 s target."""
    from agent.console.bench import bench_agent as run_bench
    from trader_core.cli_utils import print_json

    r = run_bench(turns=turns, llm=None if llm == "none" else llm, llm_turns=llm_turns)
    if json_out:
        print_json(r.model_dump())
        return
    typer.echo(f"turn overhead {r.turn_overhead_ms:.2f} ms per turn (tools + glue, no LLM) vs {r.direct_ms:.2f} ms "
               f"for the same calls made directly: ratio {r.overhead_ratio:.2f}x (target < 100 ms)")
    typer.echo("  by intent (median ms): " + ", ".join(f"{k} {v:.2f}" for k, v in r.by_intent_ms.items()))
    typer.echo(f"{r.model}: {r.tokens_per_s:.1f} tokens/s")
    if r.llm_turns:
        t = r.llm_turns
        typer.echo(f"whole turns with {t.model}: p50 {t.p50_s:.2f} s, p90 {t.p90_s:.2f} s, max {t.max_s:.2f} s over "
                   f"{t.turns} turns (target p50 <= {t.target_p50_s:g} s); plan sources "
                   + ", ".join(f"{k} {v}" for k, v in t.plan_sources.items()))


def bench_learn(
    decisions: int = typer.Option(150, "--decisions", help="decisions timed per block"),
    json_out: bool = typer.Option(False, "--json", help="print the measurements as JSON"),
) -> None:
    """Decision latency p95 with the online learner training beside the loop vs without it (same process)."""
    from agent.console.learn_bench import bench_learn as run_bench
    from trader_core.cli_utils import print_json

    r = run_bench(decisions=decisions)
    if json_out:
        print_json(r.model_dump())
        return
    typer.echo(f"decision latency p95: {r.p95_with_ms:.2f} ms with the learner vs {r.p95_without_ms:.2f} ms without: "
               f"ratio {r.p95_ratio:.2f}x (target <= 1.20); p50 {r.p50_with_ms:.2f} vs {r.p50_without_ms:.2f} ms")
    typer.echo(f"learner: {r.learner_steps} gradient steps during the block ({r.learner_steps_per_s:.0f}/s); machine "
               f"drift between the two blocks without it: {r.drift_ratio:.2f}x")


top_level_commands = [chat, ask, run, signal]
bench_commands = {"agent": bench_agent, "learn": bench_learn}
