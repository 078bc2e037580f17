"""`trader finetune prepare`: records -> mlx-lm chat JSONL (train/valid/test), split by time.

Splitting by timestamp (not at random) keeps later market states out of training: every record of one
timestamp lands in one split, and valid/test come strictly after train.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from finetune import formats
from finetune.artifacts import config_matches
from trader_core.config import save_config
from trader_core.errors import ConfigError, DataError

CONFIG = "prepare_config.json"
ROUTE_CONFIG = "route_config.json"
MIX_CONFIG = "mix_config.json"
SPLITS = ("train", "valid", "test")


class PrepareConfig(BaseModel):
    inputs: list[str] = Field(..., description="Record JSONL files (distill.jsonl, teacher.jsonl).")
    out: str = Field("runs/finetune/data", description="Output directory for train/valid/test.jsonl.")
    valid_frac: float = Field(0.1, gt=0, lt=0.5, description="Share of timestamps (after train) for validation.")
    test_frac: float = Field(0.1, gt=0, lt=0.5, description="Share of the latest timestamps held out for eval.")


class SplitStats(BaseModel):
    n: int
    actions: dict[str, int]
    first: str
    last: str
    mean_prompt_chars: float
    mean_response_chars: float


class PrepareResult(BaseModel):
    out: str
    splits: dict[str, SplitStats]


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def time_split(records: list[dict], valid_frac: float, test_frac: float) -> dict[str, list[dict]]:
    """Cut the sorted unique timestamps into train < valid < test; each split non-empty or a DataError."""
    stamps = sorted({int(r["timestamp"]) for r in records})
    if len(stamps) < 3:
        raise DataError(f"need records at >= 3 distinct timestamps to split by time, got {len(stamps)}; "
                        "distill more episodes/steps")
    n = len(stamps)
    n_test = max(1, round(n * test_frac))
    n_valid = max(1, round(n * valid_frac))
    if n - n_test - n_valid < 1:
        raise DataError(f"{n} timestamps are too few for valid_frac={valid_frac} and test_frac={test_frac}")
    valid_from, test_from = stamps[n - n_test - n_valid], stamps[n - n_test]
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for r in sorted(records, key=lambda r: int(r["timestamp"])):
        ts = int(r["timestamp"])
        out["test" if ts >= test_from else "valid" if ts >= valid_from else "train"].append(r)
    return out


def _check(rec: dict, where: str) -> None:
    missing = [k for k in ("timestamp", "prompt", "response") if k not in rec]
    if missing:
        raise DataError(f"{where}: record lacks {', '.join(missing)}; use files written by distill or teacher")
    if formats.parse_action(rec["response"]) is None:
        raise DataError(f"{where}: response has no 'RECOMMENDATION: BUY|SELL|HOLD' line")


def prepare(config: PrepareConfig) -> PrepareResult:
    records: list[dict] = []
    for path in config.inputs:
        for i, rec in enumerate(formats.read_jsonl(path), 1):
            _check(rec, f"{path}: record {i}")
            records.append(rec)
    if not records:
        raise DataError(f"no records in {', '.join(config.inputs)}")
    parts = time_split(records, config.valid_frac, config.test_frac)
    out = Path(config.out)
    stats: dict[str, SplitStats] = {}
    for name, recs in parts.items():
        formats.write_jsonl(out / f"{name}.jsonl",
                            ({"messages": formats.chat_messages(r["prompt"], r["response"]),
                              "meta": {"task": "trade", "position": r.get("position"),
                                       "timestamp": int(r["timestamp"])}} for r in recs))
        stats[name] = SplitStats(
            n=len(recs),
            actions=dict(sorted(Counter(formats.parse_action(r["response"]) for r in recs).items())),
            first=_iso(int(recs[0]["timestamp"])), last=_iso(int(recs[-1]["timestamp"])),
            mean_prompt_chars=round(sum(len(r["prompt"]) for r in recs) / len(recs), 1),
            mean_response_chars=round(sum(len(r["response"]) for r in recs) / len(recs), 1))
    result = PrepareResult(out=str(out), splits=stats)
    (out / "stats.json").write_text(json.dumps(result.model_dump(), indent=2) + "\n")
    save_config(config, out, CONFIG)
    return result


def is_done(config: PrepareConfig) -> bool:
    out = Path(config.out)
    return all((out / f"{s}.jsonl").exists() for s in SPLITS) and config_matches(out, CONFIG, config)


def labels(path: str | Path) -> list[tuple[list[dict], str]]:
    """(request messages, label) pairs of a chat JSONL: the label is the assistant's RECOMMENDATION."""
    pairs = []
    for i, rec in enumerate(formats.read_jsonl(path), 1):
        msgs = rec.get("messages") or []
        if not msgs or msgs[-1].get("role") != "assistant":
            raise DataError(f"{path}: record {i} has no assistant message; pass a file written by prepare")
        label = formats.parse_action(msgs[-1]["content"])
        if label is None:
            raise DataError(f"{path}: record {i} has no RECOMMENDATION line in its answer")
        pairs.append((msgs[:-1], label))
    return pairs


class RouteDataConfig(BaseModel):
    """Generated phrasings labelled with the `plan` call (finetune.data.routing): train/valid from the training
    templates, test from the held-out templates only."""

    n_train: int = Field(900, ge=1, description="Training phrasings.")
    n_valid: int = Field(60, ge=1, description="Validation phrasings (training templates, unseen texts).")
    n_test: int = Field(300, ge=1, description="Test phrasings from held-out templates.")
    seed: int = 0
    out: str = Field("runs/finetune/data/route", description="Output folder (train/valid/test.jsonl).")


def route_data(config: RouteDataConfig) -> PrepareResult:
    from finetune.data import routing

    train = routing.generate(config.n_train, seed=config.seed)
    seen = {(e.text, e.context) for e in train}
    valid = [e for e in routing.generate(config.n_valid * 2, seed=config.seed + 1)
             if (e.text, e.context) not in seen][: config.n_valid]
    test = routing.generate(config.n_test, heldout=True, seed=config.seed + 2)
    out = Path(config.out)
    stats = {}
    for name, examples in (("train", train), ("valid", valid), ("test", test)):
        formats.write_jsonl(out / f"{name}.jsonl", (routing.to_chat(e) for e in examples))
        stats[name] = SplitStats(n=len(examples), actions=dict(sorted(Counter(e.label.intent for e in examples).items())),
                                 first="", last="", mean_prompt_chars=round(sum(len(e.text) for e in examples)
                                                                             / max(1, len(examples)), 1),
                                 mean_response_chars=0.0)
    result = PrepareResult(out=str(out), splits=stats)
    (out / "stats.json").write_text(json.dumps(result.model_dump(), indent=2) + "\n")
    save_config(config, out, ROUTE_CONFIG)
    return result


def route_data_done(config: RouteDataConfig) -> bool:
    out = Path(config.out)
    return all((out / f"{s}.jsonl").exists() for s in SPLITS) and config_matches(out, ROUTE_CONFIG, config)


class MixConfig(BaseModel):
    """One LoRA data folder from several (trading + routing): train and valid concatenated, shuffled."""

    inputs: list[str] = Field(..., description="Folders holding train.jsonl and valid.jsonl.")
    repeat: list[int] | None = Field(None, description="Times each input's train records appear (default 1 each).")
    out: str = Field("runs/finetune/data/mix", description="Output folder.")
    seed: int = 0


def mix(config: MixConfig) -> PrepareResult:
    import random

    rng = random.Random(config.seed)
    out = Path(config.out)
    stats = {}
    repeat = config.repeat or [1] * len(config.inputs)
    if len(repeat) != len(config.inputs) or min(repeat) < 1:
        raise ConfigError(f"repeat needs one count >= 1 per input ({len(config.inputs)}), got {repeat}")
    for split in ("train", "valid"):
        rows = [rec for folder, times in zip(config.inputs, repeat)
                for rec in formats.read_jsonl(Path(folder) / f"{split}.jsonl") * (times if split == "train" else 1)]
        if not rows:
            raise DataError(f"no {split} records in {', '.join(config.inputs)}")
        rng.shuffle(rows)
        formats.write_jsonl(out / f"{split}.jsonl", rows)
        tasks = Counter((r.get("meta") or {}).get("task", "?") for r in rows)
        stats[split] = SplitStats(n=len(rows), actions=dict(sorted(tasks.items())), first="", last="",
                                  mean_prompt_chars=0.0, mean_response_chars=0.0)
    result = PrepareResult(out=str(out), splits=stats)
    save_config(config, out, MIX_CONFIG)
    return result


def mix_done(config: MixConfig) -> bool:
    out = Path(config.out)
    return all((out / f"{s}.jsonl").exists() for s in ("train", "valid")) and config_matches(out, MIX_CONFIG, config)
