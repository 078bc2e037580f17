"""Which policy serves a learning run, and how to go back: `learn/serving.json` in the run directory.

The serving entry is the incumbent (the policy the run started with) or a promoted candidate checkpoint;
every promotion pushes the entry it replaced, `rollback` pops it. Each change is an atomic rewrite with a
version number the decision loop watches, and a line in `promotions.jsonl`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel

from trader_core.errors import ConfigError, ModelError
from trader_core.paths import atomic_write_text

LEARN_DIR = "learn"


class ServingEntry(BaseModel):
    kind: str = "incumbent"  # incumbent | candidate
    checkpoint: str | None = None  # candidate checkpoint, relative to the run directory
    step: int = 0


class ServingState(BaseModel):
    version: int = 0
    current: ServingEntry = ServingEntry()
    previous: list[ServingEntry] = []


def serving_path(run_dir: Path) -> Path:
    return Path(run_dir) / LEARN_DIR / "serving.json"


def read_serving(run_dir: Path) -> ServingState:
    path = serving_path(run_dir)
    if not path.exists():
        return ServingState()
    try:
        return ServingState.model_validate_json(path.read_text())
    except ValueError as exc:
        raise ModelError(f"{path} is damaged ({str(exc).splitlines()[0]}); restore it or remove it to serve "
                         "the incumbent") from None


def append_promotion(run_dir: Path, record: dict) -> None:
    with (Path(run_dir) / "promotions.jsonl").open("a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()


def promote(run_dir: Path, checkpoint: Path, step: int) -> ServingState:
    state = read_serving(run_dir)
    rel = str(Path(checkpoint).resolve().relative_to(Path(run_dir).resolve()))
    new = ServingState(version=state.version + 1, current=ServingEntry(kind="candidate", checkpoint=rel, step=step),
                       previous=[*state.previous, state.current])
    atomic_write_text(serving_path(run_dir), new.model_dump_json(indent=1))
    return new


def rollback(run_dir: str | Path) -> ServingState:
    """Restore the serving policy that the last promotion replaced; a line in promotions.jsonl says so."""
    run_dir = Path(run_dir).expanduser()
    if not (run_dir / LEARN_DIR).is_dir():
        raise ConfigError(f"{run_dir} is not a learning run (no {LEARN_DIR}/ folder); pass the --out folder of a "
                          "`trader run --learn`")
    state = read_serving(run_dir)
    if not state.previous:
        raise ConfigError(f"{run_dir}: nothing to roll back; the run still serves the policy it started with")
    new = ServingState(version=state.version + 1, current=state.previous[-1], previous=state.previous[:-1])
    atomic_write_text(serving_path(run_dir), new.model_dump_json(indent=1))
    append_promotion(run_dir, {"kind": "rollback", "time": time.time(), "from": state.current.model_dump(),
                               "to": new.current.model_dump()})
    return new
