"""`trader rl backtest`: the policy vs buy-and-hold, flat, random and SMA over the same bars and costs.

Writes report.json, an equity-curve PNG and the policy's trades CSV into the output folder. With a
run directory holding several seeds (`seed_*` sub-runs), also reports mean and std over the seeds.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from rl.paths import prepare_out_dir
from rl.policy import Policy
from trader_core.errors import DataError
from trader_core.paths import portable_path


def _range(candles, start: str | None, end: str | None, policy: Policy) -> tuple[int, int]:
    from rl.envs.data import split_by_dates

    if start is None and end is None:  # default: the run's own held-out test split
        sp = split_by_dates(candles, policy.config.train_end, policy.config.val_end,
                            gap=policy.config.features.lookback)
        return sp.test
    a = candles.index_at(start) if start else 0
    b = candles.index_at(end) + 1 if end else len(candles)
    b = min(b, len(candles))
    if b - a < 2:
        raise DataError(f"the backtest range {start}..{end} holds {max(0, b - a)} bars of this data; widen it")
    return a, b


def fitted_span(policy: Policy) -> tuple[int, int] | None:
    """Unix-second span of the bars the policy was trained and validated on (from its metrics.json)."""
    from rl.envs.data import parse_time

    path = policy.member_dirs[0] / "metrics.json"
    if not path.exists():
        return None
    split = json.loads(path.read_text()).get("split") or {}
    if "train" not in split or "val" not in split:
        return None
    return parse_time(split["train"]["start"]), parse_time(split["val"]["end"])


def overlap_warning(candles, a: int, b: int, policy: Policy) -> str | None:
    """A warning when [a, b) overlaps the bars the policy was fitted or checkpoint-selected on."""
    span = fitted_span(policy)
    if span is None:  # same dates on another asset are still the market the policy was fitted to
        return None
    lo, hi = int(candles.timestamps[a]), int(candles.timestamps[b - 1])
    if lo <= span[1] and hi >= span[0]:
        from rl.policy import iso

        return (f"the backtest range {iso(lo)[:10]}..{iso(hi)[:10]} overlaps the policy's training and "
                f"validation bars ({iso(span[0])[:10]}..{iso(span[1])[:10]}): in-sample results flatter the "
                "policy; omit --start/--end for its held-out test split")
    return None


SEED_KEYS = ["total_return", "sharpe", "sortino", "max_drawdown", "n_trades", "fees_paid"]


def backtest(run: str | Path | None = "default", data: str | None = None, start: str | None = None,
             end: str | None = None, out: str | Path | None = None, seeds: list[int] | None = None) -> dict:
    """Metrics per strategy (the JSON contract). `policy` is what `Policy.load(run)` serves: one model, or the
    vote of a multi-seed run's members (`seeds` picks some); `policy_seeds` adds each member, mean and std."""
    from rl.envs.data import load_candles
    from rl.training.evaluate import compare, run_backtest
    from rl.metrics import compute_metrics

    out_dir = prepare_out_dir(out) if out is not None else None
    policy = Policy.load(run, seeds=seeds)
    candles = policy.select_columns(load_candles(data or policy.config.data, policy.config.interval))
    policy.check_interval(candles)
    a, b = _range(candles, start, end, policy)
    feats = policy.features_for(candles)
    report, results = compare(feats, policy.config.env, a, b, policy.action_fn())
    report["policy"]["run"] = portable_path(policy.run_dir)
    report["policy"]["members"] = len(policy.models)
    add_risk_matched_baselines(report, results["policy"], policy, feats, a, b)
    if len(policy.models) > 1:
        per_seed = [compute_metrics(run_backtest(feats, policy.config.env, a, b, Policy(
            [m], policy.config, d).action_fn()), candles.interval_s)
            for m, d in zip(policy.models, policy.member_dirs)]
        report["policy_seeds"] = {k: {"mean": float(np.mean([m[k] for m in per_seed])),
                                      "std": float(np.std([m[k] for m in per_seed])),
                                      "values": [float(m[k]) for m in per_seed]} for k in SEED_KEYS}
        report["policy_seeds"]["seeds"] = [d.name for d in policy.member_dirs]
    report["period"] = {"start": int(candles.timestamps[a]), "end": int(candles.timestamps[b - 1]),
                        "bars": b - a, "data": candles.name}
    warning = overlap_warning(candles, a, b, policy)
    report["warnings"] = [warning] if warning else []
    if out_dir is not None:
        write_outputs(report, results, out_dir)
    return report


def add_risk_matched_baselines(report: dict, result, policy, feats, a: int, b: int) -> None:
    """Constant exposure and volatility targeting at the policy's own exposure and risk, the judgement against
    the best baseline, and how much of the policy's decisions its position alone predicts."""
    from rl.training.baselines import constant_exposure, decisions_on_states, judge, position_predictability, vol_target
    from rl.training.evaluate import baseline_env

    base = baseline_env(policy.config.env)
    report["const_exposure"] = constant_exposure(feats.candles, a, b, base, report["policy"]["mean_exposure"])
    report["vol_target"] = vol_target(feats.candles, a, b, base, result.returns)
    report["policy"]["position_predictability"] = position_predictability(
        *decisions_on_states(policy.models, feats, policy.config.env, a, b))
    report["judgement"] = judge(report)


def write_outputs(report: dict, results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    policy = results.get("policy")
    if policy is not None:
        with open(out / "trades.csv", "w", newline="") as fh:
            cols = ["timestamp", "action", "from_position", "to_position", "price", "fee_usd", "impact_usd",
                    "gas_usd", "equity_after"]
            writer = csv.DictWriter(fh, fieldnames=cols)
            writer.writeheader()
            writer.writerows(policy.trades)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for name, res in results.items():
        if res.timestamps:
            x = np.asarray(res.timestamps, dtype="datetime64[s]")
            ax.plot(x, np.cumprod(1.0 + res.returns), label=name, lw=1.6 if name == "policy" else 1.0)
    ax.set_ylabel("equity (x initial)")
    ax.set_title("Backtest net of fees, price impact and gas")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.savefig(out / "equity.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def format_table(report: dict) -> list[list[str]]:
    """Rows for a Rich table: one strategy per row."""
    rows = []
    for name in ("policy", "buy_and_hold", "flat", "random", "sma"):
        m = report.get(name)
        if m is None:
            continue
        pf = m.get("profit_factor")
        rows.append([name, f"{m['total_return']:+.2%}", f"{m['annualised_return']:+.1%}", f"{m['sharpe']:.2f}",
                     f"{m['sortino']:.2f}", f"{m['max_drawdown']:.1%}", f"{m['n_trades']:.0f}",
                     f"{m['hit_rate']:.0%}", "-" if pf is None else f"{pf:.2f}", f"{m['time_in_market']:.0%}",
                     f"${m['fees_paid']:,.0f}", f"${m['impact_paid']:,.0f}"])
    return rows


TABLE_COLUMNS = ["strategy", "return", "annual", "Sharpe", "Sortino", "max DD", "trades", "hit", "PF",
                 "in mkt", "fees", "impact"]
