"""`trader rl train|backtest|signal|search|rollback` and `trader bench env|train`: thin commands over library functions."""

from __future__ import annotations

from typing import Optional

import typer

app = typer.Typer(help="Train, backtest and query the DQN trading policy.", no_args_is_help=True)


@app.command()
def train(
    data: Optional[str] = typer.Option(None, help="Bundled dataset name or candle CSV path [chainlink-eth-1h]."),
    out: str = typer.Option(..., help="Run directory to write (model, config, features, metrics, tb/)."),
    timesteps: Optional[int] = typer.Option(None, help="Environment timesteps to train for [100000]."),
    seed: Optional[int] = typer.Option(None, help="Random seed [0]."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds: trains OUT/seed_<s> for each."),
    algo: Optional[str] = typer.Option(None, help="dqn, qrdqn, ppo or a2c [dqn]."),
    n_envs: Optional[int] = typer.Option(None, help="Envs stepped together; batched numpy env when > 1 [16]."),
    train_end: Optional[str] = typer.Option(None, help="Last training timestamp (ISO-8601)."),
    val_end: Optional[str] = typer.Option(None, help="Last validation timestamp (ISO-8601)."),
    interval: Optional[str] = typer.Option(None, help="Candle interval for swap-event data, e.g. 1h."),
    reward: Optional[str] = typer.Option(None, help="log_return, diff_sharpe, drawdown_penalty or freqai."),
    action_set: Optional[str] = typer.Option(None, help="spot3, target, 5action or size5 (exposure 0/25/50/75/100%)."),
    eval_freq: Optional[int] = typer.Option(None, help="Timesteps between validation backtests."),
    config: Optional[str] = typer.Option(None, help="YAML/JSON/TOML file with TrainConfig fields "
                                         "(environment: TRADER_RL_<FIELD>; flags win over both)."),
    resume: bool = typer.Option(False, help="Continue training the run in --out (continual learning)."),
    json_out: bool = typer.Option(False, "--json", help="Print metrics as JSON."),
) -> None:
    """Train a policy with SB3; keeps the checkpoint with the best validation Sharpe net of costs."""
    from rl.training.config import TrainConfig
    from rl.training.train import load_train_config, train as run_train
    from trader_core.cli_utils import console, print_json
    from trader_core.config import resolve_config
    from trader_core.errors import ConfigError

    if seed is not None and seeds:
        raise ConfigError("pass either --seed or --seeds, not both")
    overrides = {"data": data, "timesteps": timesteps, "seed": seed, "algo": algo, "n_envs": n_envs,
                 "train_end": train_end, "val_end": val_end, "interval": interval, "eval_freq": eval_freq}
    env_over = {k: v for k, v in {"reward": reward, "action_set": action_set}.items() if v is not None}
    try:
        seed_list = [int(s) for s in seeds.split(",")] if seeds else [seed]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers such as 0,1,2, got {seeds!r}") from None
    from rl.paths import prepare_out_dir

    prepare_out_dir(out)
    results = {}
    for s in seed_list:
        run_dir = out if not seeds else f"{out}/seed_{s}"
        if resume:
            cfg = load_train_config(run_dir)
            cfg = cfg.model_copy(update={"timesteps": timesteps or cfg.timesteps})
        else:
            cfg = resolve_config(TrainConfig, {**overrides, "seed": s}, config, env_prefix="TRADER_RL_")
            if env_over:  # validated like every other setting: one line naming env.<field>
                cfg = resolve_config(TrainConfig, {**cfg.model_dump(), "env": {**cfg.env.model_dump(), **env_over}},
                                     env_prefix="TRADER_RL_")
        metrics = run_train(cfg, run_dir, resume=resume, progress=not json_out)
        results[str(s)] = metrics
        if not json_out:
            best = metrics["best_validation"] or {}
            console().print(f"[green]trained[/] {run_dir}: {metrics['timesteps']} timesteps at "
                            f"{metrics['timesteps_per_s']:.0f}/s; best validation Sharpe "
                            f"{best.get('val_sharpe', float('nan')):.2f} at {best.get('timesteps')} steps")
    if json_out:
        print_json(results[str(seed_list[0])] if len(seed_list) == 1 else results)


@app.command()
def backtest(
    run: str = typer.Option("default", help="Run directory, or 'default' for the bundled policy."),
    data: Optional[str] = typer.Option(None, help="Dataset name or CSV path (default: the run's data)."),
    start: Optional[str] = typer.Option(None, help="First traded bar (ISO); earlier bars are feature history."),
    end: Optional[str] = typer.Option(None, help="Last traded bar (ISO)."),
    out: Optional[str] = typer.Option(None, help="Folder for report.json, equity.png and trades.csv."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated training seeds of a multi-seed run "
                                        "to summarise (default: all seed_* runs)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Policy vs buy-and-hold, flat, random and SMA crossover, net of fees, price impact and gas."""
    from rl.backtest import TABLE_COLUMNS, backtest as run_backtest, format_table
    from trader_core.cli_utils import console, print_json
    from trader_core.errors import ConfigError

    try:
        seed_list = [int(x) for x in seeds.split(",")] if seeds else None
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers such as 0,1,2, got {seeds!r}") from None
    report = run_backtest(run, data, start, end, out, seed_list)
    if json_out:
        print_json(report)
        return
    import sys

    for warning in report.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    from rich.table import Table

    table = Table(title=f"Backtest {report['period']['data']}: {report['period']['bars']} bars")
    for col in TABLE_COLUMNS:
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for row in format_table(report):
        table.add_row(*row)
    con = console()
    con.print(table)
    if "policy_seeds" in report:
        s = report["policy_seeds"]
        con.print(f"policy = vote of {len(s['seeds'])} seeds; each seed: return {s['total_return']['mean']:+.2%} ± "
                  f"{s['total_return']['std']:.2%}, Sharpe {s['sharpe']['mean']:.2f} ± {s['sharpe']['std']:.2f}")
    if out:
        con.print(f"wrote {out}/report.json, equity.png, trades.csv")


@app.command()
def signal(
    run: str = typer.Option("default", help="Run directory, or 'default' for the bundled policy."),
    data: Optional[str] = typer.Option(None, help="Dataset name or CSV path (default: the run's data)."),
    position: float = typer.Option(0.0, help="Fraction of the portfolio held in ETH (0..1; -1..1 if the "
                                   "policy may short)."),
    now: Optional[str] = typer.Option(None, help="Evaluate as of this time (ISO-8601): a bar older than 3 "
                                      "intervals is stale [the wall clock]."),
    json_out: bool = typer.Option(False, "--json", help="Print the signal as JSON."),
) -> None:
    """The policy's decision for the latest bar: action, agreement, Q-margin, Q-values and the features behind it."""
    import math

    from rl.envs.data import load_candles, parse_time
    from rl.policy import Policy
    from trader_core.cli_utils import console, print_json
    from trader_core.errors import ConfigError

    policy = Policy.load(run)
    low = -1.0 if policy.config.env.allow_short else 0.0
    if not (math.isfinite(position) and low <= position <= 1.0):
        what = "long-only (it never shorts)" if position < 0 and low == 0 else f"for positions {low:g}..1"
        raise ConfigError(f"--position {position:g} is out of range: this policy is {what}; pass the fraction "
                          f"of the portfolio held in ETH, {low:g}..1")
    when = parse_time(now) if now else None
    candles = load_candles(data, policy.config.interval) if data else None
    sig = policy.signal(candles, position=position, now=when)
    if json_out:
        print_json(sig.model_dump())
        return
    con = console()
    age = "" if sig.age_s is None else f", {sig.age_s / 3600:.1f} h old"
    head = f"[bold]{sig.action}[/] for the bar of {sig.time}{age} at price {sig.price:,.2f}"
    if sig.reason:
        con.print(f"{head}  [yellow]safety switch: {sig.reason}[/]")
    else:
        con.print(f"{head}: {sig.agreement:.0%} of {sig.members} member(s) agree, Q-margin {sig.q_margin:+.4f}")
        con.print("Q-values: " + ", ".join(f"{n}={q:+.4f}" for n, q in zip(policy.action_names, sig.q_values)))
    con.print("features: " + ", ".join(f"{k}={v:.4g}" for k, v in sig.features.items()))


def bench_env(
    seconds: float = typer.Option(2.0, help="Approximate seconds per measurement."),
    json_out: bool = typer.Option(False, "--json", help="Print results as JSON."),
) -> None:
    """Env steps/s: our single and batched env vs gym-anytrading's stocks-v0, in this process."""
    from rl.bench import bench_env as run
    from trader_core.cli_utils import console, print_json

    res = run(seconds)
    if json_out:
        print_json(res)
        return
    console().print(f"ours single  {res['ours_single']:>14,.0f} steps/s  ({res['single_ratio']:.2f}x gym-anytrading)\n"
                    f"ours batched {res['ours_batched']:>14,.0f} steps/s  (n_envs={res['batched_n_envs']})\n"
                    f"gym-anytrading {res['gym_anytrading']:>12,.0f} steps/s")


def bench_train(
    timesteps: int = typer.Option(6000, min=100, help="Timesteps per measured run (after learning_starts)."),
    rounds: int = typer.Option(2, min=1, max=20, help="Interleaved rounds; the best of each setup is kept."),
    json_out: bool = typer.Option(False, "--json", help="Print results as JSON."),
) -> None:
    """`trader rl train` timesteps/s next to SB3 DQN: its defaults, and exactly our setup, taken apart."""
    from rl.bench import bench_train as run
    from trader_core.cli_utils import console, print_json

    res = run(timesteps, rounds)
    if json_out:
        print_json(res)
        return
    console().print(
        f"SB3 DQN defaults, gym-anytrading   {res['sb3_defaults_anytrading']:>8,.0f} timesteps/s\n"
        f"SB3 DQN defaults, our env          {res['sb3_defaults']:>8,.0f} timesteps/s  "
        f"(env: {res['env_gain']:.2f}x)\n"
        f"SB3 DQN, our setup                 {res['sb3_same_setup']:>8,.0f} timesteps/s  "
        f"({res['n_envs']} batched envs, batch {res['batch_size']}, fused Adam: {res['batching_gain']:.2f}x)\n"
        f"ours (FastDQN), our setup          {res['ours']:>8,.0f} timesteps/s  "
        f"(leaner update: {res['fast_dqn_gain']:.2f}x)\n"
        f"ours vs SB3 defaults on gym-anytrading: {res['ratio']:.2f}x, same {res['utd']} updates per transition")


def bench_search(
    trials: int = typer.Option(4, help="Trials per measured study."),
    workers: str = typer.Option("1,2", help="Comma-separated local worker counts to compare."),
    timesteps: int = typer.Option(3000, help="Training timesteps of every trial (fixed, so trials cost alike)."),
    json_out: bool = typer.Option(False, "--json", help="Print results as JSON."),
) -> None:
    """`trader rl search` trials per hour with 1 and 2 local workers on one small fixed study (SQLite)."""
    from rl.tuning.search_bench import SearchBenchConfig, bench_search as run
    from trader_core.cli_utils import console, print_json
    from trader_core.config import resolve_config
    from trader_core.errors import ConfigError

    try:
        counts = [int(w) for w in workers.split(",")]
    except ValueError:
        raise ConfigError(f"--workers must be comma-separated integers such as 1,2, got {workers!r}") from None
    res = run(resolve_config(SearchBenchConfig, {"trials": trials, "workers": counts, "timesteps": timesteps}))
    if json_out:
        print_json(res)
        return
    for r in res["runs"]:
        console().print(f"{r['workers']} worker(s): {r['trials_per_hour']:>7.1f} trials/h over the whole run "
                        f"({r['wall_s']:.0f} s, {r['speedup']:.2f}x), {r['trials_per_hour_span']:.1f} trials/h "
                        f"first trial start to last end; trials {r['trials']}; load {r['load_before']:.1f} -> "
                        f"{r['load_after']:.1f} on {res['cpus']} CPUs")


bench_commands = {"env": bench_env, "train": bench_train, "search": bench_search}


@app.command()
def search(
    out: str = typer.Option(..., help="Run directory: study.db, trials/, best.json, report.json."),
    trials: int = typer.Option(20, help="Trials in the study, counted over all workers (and machines)."),
    workers: int = typer.Option(1, help="Local worker processes (1 torch thread each)."),
    study: str = typer.Option("rl-recipe", help="Optuna study name."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage URL: sqlite:///PATH, postgresql://..., "
                                          "mysql://..., journal:PATH [SQLite in --out; or $TRADER_SEARCH_STORAGE]; the password goes "
                                          "in PGPASSWORD or ~/.pgpass, never here."),
    data: Optional[str] = typer.Option(None, help="Comma-separated datasets trained on together and tested on "
                                       "each [chainlink-eth-1h,chainlink-btc-1h]."),
    folds: int = typer.Option(3, help="Walk-forward folds."),
    train_bars: int = typer.Option(3000, help="Bars per rolling training window."),
    timesteps: Optional[int] = typer.Option(None, help="Fix every trial's training length (smoke runs)."),
    final_seeds: int = typer.Option(3, help="Seeds the chosen recipe is re-run with (vote ensemble)."),
    finalize: bool = typer.Option(True, help="After the trials: choose, re-run with seeds, test on the holdout "
                                  "(--no-finalize on extra machines that only add trials)."),
    worker: bool = typer.Option(False, "--worker", help="Join a shared study (--storage) and only add trials: "
                                "no finalize; machines never draw the same random trials."),
    heartbeat: int = typer.Option(60, help="Seconds between a running trial's heartbeats; a trial silent for 5 "
                                  "of them (its worker died) is failed and re-queued once."),
    seed: int = typer.Option(0, help="Sampler seed."),
    algos: Optional[str] = typer.Option(None, help="Comma-separated algorithms trials may use; the shipped "
                                        "recipe is the best DQN-family one [dqn,qrdqn,ppo,a2c]."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Search the training recipe with Optuna on walk-forward folds; writes best.json for `rl train --config`."""
    from rl.tuning.search import SearchConfig, search as run_search
    from rl.tuning.study_storage import refuse_password_in_argv
    from trader_core.cli_utils import print_json
    from trader_core.config import resolve_config

    refuse_password_in_argv(storage)
    datasets = [d.strip() for d in data.split(",") if d.strip()] if data else None
    cfg = resolve_config(SearchConfig, {
        "out": out, "trials": trials, "workers": workers, "study": study, "storage": storage,
        "datasets": datasets, "folds": folds, "train_bars": train_bars, "timesteps": timesteps,
        "final_seeds": final_seeds, "finalize": finalize, "seed": seed, "worker": worker or None,
        "heartbeat": heartbeat,
        "algos": [a.strip() for a in algos.split(",") if a.strip()] if algos else None}, env_prefix="TRADER_SEARCH_")
    from rl.training.algos import ALGOS
    from trader_core.errors import ConfigError

    if any(a not in ALGOS for a in cfg.algos):
        raise ConfigError(f"--algos takes {', '.join(ALGOS)}; got {', '.join(cfg.algos)}")
    report = run_search(cfg, on_progress=None if json_out else _search_progress(cfg.trials))
    if json_out:
        print_json(report)
        return
    _print_search_report(report, out)


def _search_progress(total: int):
    """A Rich progress bar fed by polling the study (the trials run in worker processes)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from trader_core.cli_utils import console

    progress = Progress(TextColumn("[bold]search[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.description}"), console=console(), transient=False)
    task = progress.add_task("", total=total)
    state = {"started": False}

    def update(study, counts: dict) -> None:
        if not state["started"]:
            progress.start()
            state["started"] = True
        done = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) + counts.get("FAIL", 0)
        try:
            best = f"best score {study.best_value:+.2f}"
        except ValueError:
            best = "no trial finished yet"
        progress.update(task, completed=min(done, total), description=(
            f"{best} | running {counts.get('RUNNING', 0)}, pruned {counts.get('PRUNED', 0)}, "
            f"failed {counts.get('FAIL', 0)}"))
        if done >= total and not any(counts.get(s) for s in ("RUNNING", "WAITING")):
            progress.stop()

    return update


def _print_search_report(report: dict, out: str) -> None:
    from rich.table import Table

    from trader_core.cli_utils import console

    con = console()
    con.print(f"study {report['study']} ({report['storage']}): {report['trials']} in {report['wall_seconds']:.0f} s")
    if "best" not in report:
        return
    best = report["best"]
    con.print(f"best DQN-family trial #{best['number']}: score {best['value']:+.2f} (median Sharpe minus the best "
              f"baseline's over folds x assets), median Sharpe {best.get('median_sharpe') or float('nan'):+.2f}")
    other = report.get("best_other_algorithm")
    if other:
        con.print(f"best other algorithm: trial #{other['number']} ({other['algo']}), score {other['value']:+.2f}"
                  + (" - scores better than the shipped DQN" if other["scores_better_than_shipped"] else ""))
    for title, rows in (("walk-forward folds", report["folds"]), ("final test (never searched)", report["holdout"])):
        table = Table(title=f"{title}, seeds {report['seeds']} (policy = their vote)")
        for col in ("fold", "asset", "window", "policy ret", "Sharpe", "B&H ret", "Sharpe", "SMA ret", "Sharpe",
                    "flat", "trades"):
            table.add_column(col, justify="left" if col in ("fold", "asset", "window") else "right")
        for r in rows:
            table.add_row(str(r["fold"]), r["dataset"], f"{r['start'][:10]}..{r['end'][:10]}",
                          f"{r['policy']['total_return']:+.1%}", f"{r['policy']['sharpe']:.2f}",
                          f"{r['buy_and_hold']['total_return']:+.1%}", f"{r['buy_and_hold']['sharpe']:.2f}",
                          f"{r['sma']['total_return']:+.1%}", f"{r['sma']['sharpe']:.2f}",
                          f"{r['flat']['total_return']:+.1%}", f"{r['policy']['n_trades']:.0f}")
        con.print(table)
    d = report["deflated_sharpe"]
    con.print(f"deflated Sharpe ratio {d['deflated_sharpe']:.2f} (probability that the true Sharpe beats the best "
              f"of {d['n_trials']} skill-less trials); "
              f"PSR vs 0 {d['psr_vs_zero']:.2f}; annualised OOS Sharpe {d['sharpe_annualised']:.2f}")
    con.print(f"retrain: trader rl train --config {out}/best.json --seeds 0,1,2 --out DIR")


@app.command()
def rollback(run_dir: str = typer.Argument(..., help="The --out folder of a `trader run --learn`.")) -> None:
    """Restore the serving policy the last promotion replaced (a running loop picks it up at its next tick)."""
    from rl.online.serving import rollback as do_rollback

    state = do_rollback(run_dir)
    entry = state.current
    typer.echo(f"serving: {entry.kind}" + (f" {entry.checkpoint} (learner step {entry.step})" if entry.checkpoint
                                           else "") + f"; {len(state.previous)} earlier promotion(s) left to roll back")
