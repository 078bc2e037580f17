"""Read-only views of what runs leave on disk: a `trader run --learn` folder (serving policy, gate results,
promotions and rollbacks, the run's decisions) and a recipe search (`trader rl search`: best trials, fold scores).

Everything here reads files the runs write atomically or append line by line; nothing is locked or changed, so the
dashboard can watch a run that is still going.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rl.online.serving import LEARN_DIR, ServingState, read_serving
from trader_core.errors import TraderError

DEFAULT_SEARCH = Path(__file__).resolve().parents[2] / "rl" / "default_policy" / "search"


class GateEvent(BaseModel):
    time: float
    kind: str  # gate | rollback
    step: int | None = None
    candidate: str | None = None
    promoted: bool | None = None
    reasons: list[str] = []
    candidate_sharpe: float | None = None
    incumbent_sharpe: float | None = None
    summary: str


class RunDecision(BaseModel):
    tick: int
    bar_time: int
    price: float
    action: str
    status: str
    decided_by: str
    equity_usd: float | None = None


class LearnerView(BaseModel):
    run: str | None
    available: bool
    message: str
    serving: ServingState | None = None
    learner: dict[str, Any] = {}
    events: list[GateEvent] = []
    promotions: int = 0
    rollbacks: int = 0
    decisions: list[RunDecision] = []


def _jsonl(path: Path, limit: int) -> list[dict]:
    """The last `limit` whole lines of an append-only JSON-lines file (a line being written is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines()[-limit:]:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _event(r: dict) -> GateEvent:
    if r.get("kind") == "rollback":
        back = (r.get("to") or {}).get("checkpoint") or "the incumbent"
        return GateEvent(time=r.get("time", 0.0), kind="rollback", summary=f"rolled back to {back}")
    cand, inc = r.get("candidate_metrics") or {}, r.get("incumbent_metrics") or {}
    promoted = bool(r.get("promoted"))
    why = "; ".join(r.get("reasons") or [])
    summary = ("promoted" if promoted else "kept the serving policy") + (f": {why}" if why and not promoted else "")
    return GateEvent(time=r.get("time", 0.0), kind="gate", step=r.get("step"), candidate=r.get("candidate"),
                     promoted=promoted, reasons=r.get("reasons") or [], candidate_sharpe=cand.get("sharpe"),
                     incumbent_sharpe=inc.get("sharpe"), summary=summary)


def _learner_meta(run: Path) -> dict[str, Any]:
    """The learner's last published status from the replay store's meta table, opened read-only."""
    path = run / LEARN_DIR / "replay.sqlite"
    if not path.exists():
        return {}
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN "
                                   "('learner_status', 'promotions', 'last_gate', 'learner_error')").fetchall())
        finally:
            db.close()
    except sqlite3.Error as exc:
        return {"error": f"replay store unreadable: {exc}"}
    out: dict[str, Any] = {k: v for k, v in meta.items() if k != "learner_status"}
    try:
        out.update(json.loads(meta.get("learner_status") or "{}"))
    except ValueError:
        pass
    return out


def learner_view(run: str | Path | None, limit: int = 500) -> LearnerView:
    if run is None:
        return LearnerView(run=None, available=False, message="no learning run: start the dashboard with --run "
                           "FOLDER (the --out of `trader run --learn`)")
    path = Path(run).expanduser()
    if not (path / LEARN_DIR).is_dir() and not (path / "decisions.jsonl").exists():
        return LearnerView(run=path.name, available=False, message=f"{path.name} holds no run yet (no "
                           f"{LEARN_DIR}/ folder, no decisions.jsonl); it appears once `trader run` writes it")
    try:
        serving = read_serving(path)
    except TraderError as exc:
        return LearnerView(run=path.name, available=False, message=str(exc))
    events = [_event(r) for r in _jsonl(path / "promotions.jsonl", limit)]
    decisions = []
    for d in _jsonl(path / "decisions.jsonl", limit):
        try:
            decisions.append(RunDecision.model_validate(d))
        except ValueError:
            continue
    return LearnerView(run=path.name, available=True, message="", serving=serving, learner=_learner_meta(path),
                       events=events, promotions=sum(bool(e.promoted) for e in events),
                       rollbacks=sum(e.kind == "rollback" for e in events), decisions=decisions)


class TrialRow(BaseModel):
    number: int
    value: float | None
    state: str
    algo: str | None
    params: dict[str, Any]
    fold_sharpes: list[float | None]


class SearchView(BaseModel):
    folder: str
    available: bool
    message: str = ""
    study: str | None = None
    trials: dict[str, int] = {}
    best: dict[str, Any] = {}
    top: list[TrialRow] = []
    folds: list[dict[str, Any]] = []
    fold_summary: dict[str, Any] = {}
    holdout_summary: dict[str, Any] = {}
    deflated_sharpe: float | None = None
    optuna_dashboard: str | None = None


def _fold_row(f: dict) -> dict[str, Any]:
    pick = lambda side: (f.get(side) or {}).get("sharpe")  # noqa: E731
    return {"fold": f.get("fold"), "dataset": f.get("dataset"), "start": f.get("start"), "end": f.get("end"),
            "policy": pick("policy"), "buy_and_hold": pick("buy_and_hold"), "sma": pick("sma"), "flat": pick("flat")}


def search_view(folder: str | Path | None = None, top: int = 8) -> SearchView:
    """A search run folder (report.json, trials/*.json); default: the search behind the bundled policy."""
    path = Path(folder).expanduser() if folder else DEFAULT_SEARCH
    name = "rl/default_policy/search (bundled)" if folder is None else path.name
    report_path = path / "report.json"
    if not report_path.exists():
        return SearchView(folder=name, available=False, message=f"no report.json in {name}: pass the --out folder "
                          "of a finished `trader rl search`")
    try:
        report = json.loads(report_path.read_text())
    except ValueError as exc:
        return SearchView(folder=name, available=False, message=f"{name}/report.json is damaged: {exc}")
    trials = []
    for t in sorted((path / "trials").glob("trial_*.json")):
        try:
            raw = json.loads(t.read_text())
        except ValueError:
            continue
        trials.append(TrialRow(number=raw.get("number", -1), value=raw.get("value"), state=raw.get("state", "?"),
                               algo=(raw.get("params") or {}).get("algo"), params=raw.get("params") or {},
                               fold_sharpes=[(f.get("policy") or {}).get("sharpe") for f in raw.get("folds") or []]))
    trials.sort(key=lambda r: (r.value is None, -(r.value or 0.0)))
    storage = report.get("storage")
    # only a local SQLite study is named: a server URL may carry credentials, and the page never shows secrets
    link = f"optuna-dashboard {storage}" if isinstance(storage, str) and storage.startswith("sqlite:") else None
    return SearchView(folder=name, available=True, study=report.get("study"), trials=report.get("trials") or {},
                      best=report.get("best") or {}, top=trials[:top],
                      folds=[_fold_row(f) for f in (report.get("folds") or []) + (report.get("holdout") or [])],
                      fold_summary=report.get("fold_summary") or {},
                      holdout_summary=report.get("holdout_summary") or {},
                      deflated_sharpe=(report.get("deflated_sharpe") or {}).get("deflated_sharpe"),
                      optuna_dashboard=link)
