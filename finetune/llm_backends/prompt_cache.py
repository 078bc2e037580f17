"""Evaluated prompt prefixes kept as llama.cpp states, in memory and on disk, so a new process starts warm.

Every turn renders the same system prompt and tool schema before the user's words. llama.cpp keeps one KV
prefix per context, and a turn alternates a planning prompt and an answer prompt, so in a long session and in
every new `trader ask` process that prefix was evaluated again (hundreds of tokens: seconds on 2 cores).

`PromptStateCache` is a llama-cpp-python cache (`Llama.set_cache`): after each completion the context's state is
kept under its tokens; before the next, the longest stored prefix of the new prompt is restored and only the rest
is evaluated. States live in memory and in `$TRADER_HOME/cache/prompt-states/<model key>/` (the key hashes the
model file, the LoRA, the context settings and the llama.cpp build, so a state is only ever loaded into the model
that made it), written atomically and evicted oldest first beyond a byte budget.

A state is compact: the KV bytes and the token ids. llama-cpp-python's own `save_state` also copies the logits of
every evaluated position (n_tokens x n_vocab floats: 225 MB after a 370-token Qwen prompt, 0.45 s a completion)
and `LlamaRAMCache` counted only the KV bytes against its budget, so a chat session's memory grew by hundreds of
MB a turn. The restored logits are never read: llama-cpp-python re-evaluates at least the prompt's last token
after a state load.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

_MAGIC = b"TRPS1\n"  # file format: magic, 8-byte token count, int32 tokens, the llama.cpp state bytes


def model_key(path: str | Path, lora: str | Path | None, n_ctx: int, n_batch: int) -> str:
    """What a state depends on: the model and LoRA files (path, size, modification time), the context settings
    and the llama.cpp build."""
    import llama_cpp

    parts = [llama_cpp.__version__, str(n_ctx), str(n_batch)]
    for f in (path, lora):
        if f:
            st = Path(f).stat()
            parts += [str(Path(f).resolve()), str(st.st_size), str(st.st_mtime_ns)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def compact_llama_class():
    """`llama_cpp.Llama` whose save_state/load_state move the KV state and token ids only (see the module doc)."""
    global _COMPACT
    if _COMPACT is None:
        import llama_cpp

        class CompactStateLlama(llama_cpp.Llama):
            def save_state(self) -> "llama_cpp.LlamaState":
                size = llama_cpp.llama_state_get_size(self._ctx.ctx)
                buf = (ctypes.c_uint8 * int(size))()
                n = int(llama_cpp.llama_state_get_data(self._ctx.ctx, buf, size))
                if n > int(size):
                    raise RuntimeError("llama.cpp wrote more state than it said it would")
                return llama_cpp.LlamaState(input_ids=self.input_ids[: self.n_tokens].copy(),
                                            scores=np.zeros((0, 0), np.single), n_tokens=self.n_tokens,
                                            llama_state=ctypes.string_at(buf, n), llama_state_size=n,
                                            seed=self._seed)

            def load_state(self, state: "llama_cpp.LlamaState") -> None:
                data = (ctypes.c_uint8 * state.llama_state_size).from_buffer_copy(state.llama_state)
                if llama_cpp.llama_state_set_data(self._ctx.ctx, data, state.llama_state_size) != \
                        state.llama_state_size:
                    raise RuntimeError("llama.cpp refused a stored prompt state")
                self.input_ids[: state.n_tokens] = state.input_ids[: state.n_tokens]
                self.n_tokens = state.n_tokens
                self._requires_eval = True  # the logits are not restored: the next prompt token is evaluated
                self._seed = state.seed

        _COMPACT = CompactStateLlama
    return _COMPACT


_COMPACT = None


class PromptStateCache:
    """A cache for `Llama.set_cache` (the interface `llama_cpp.BaseLlamaCache` describes): `memory_mb` of states
    in this process and, when `folder` is given, `disk_mb` of them there for the next process."""

    def __init__(self, folder: Path | None, memory_mb: float = 128, disk_mb: float = 64):
        self.capacity_bytes, self.disk_bytes = int(memory_mb * 2**20), int(disk_mb * 2**20)
        self.memory: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self.folder = folder
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError:  # a read-only or full TRADER_HOME: states stay in memory, the model still loads
                self.folder = None

    @property
    def cache_size(self) -> int:
        return sum(s.llama_state_size + s.input_ids.nbytes for s in self.memory.values())

    def __contains__(self, key) -> bool:
        try:
            self[key]
            return True
        except KeyError:
            return False

    def __getitem__(self, key):
        """The stored state sharing the longest prefix with `key` (memory first, then disk); KeyError if none."""
        key = tuple(key)
        best, best_len = None, 0
        for tokens in self.memory:
            n = _common_prefix(tokens, key)
            if n > best_len:
                best, best_len = tokens, n
        if self.folder is not None:
            path, disk_len = self._disk_best(key)
            state = _read(path) if path is not None and disk_len > best_len else None
            if state is not None:
                self._remember(state)
                return state
        if best is None:
            raise KeyError("no stored prompt shares a prefix with this one")
        self.memory.move_to_end(best)
        return self.memory[best]

    def __setitem__(self, key, state) -> None:
        # stored under what the state holds: llama.cpp has not evaluated the last sampled token of `key`
        self._remember(state)
        tokens = state.input_ids[: state.n_tokens].tolist()
        if self.folder is not None and self._disk_best(tokens)[1] * 2 < state.n_tokens:
            # on disk only what no stored state half covers: a new system prompt, not every turn (an eval's
            # hundreds of prompts share one prefix: one file, not gigabytes of writes)
            _write(self.folder, state, self.disk_bytes)

    def _remember(self, state) -> None:
        tokens = tuple(int(t) for t in state.input_ids[: state.n_tokens])
        self.memory[tokens] = state
        self.memory.move_to_end(tokens)
        while self.cache_size > self.capacity_bytes and len(self.memory) > 1:
            self.memory.popitem(last=False)

    def _disk_best(self, key) -> tuple[Path | None, int]:
        best, best_len = None, 0
        for path in self.folder.glob("*.state"):
            tokens = _read_tokens(path)
            n = _common_prefix(tokens, key) if tokens is not None else 0
            if n > best_len:
                best, best_len = path, n
        return best, best_len


def _common_prefix(a, b) -> int:
    from llama_cpp import Llama  # llama-cpp-python's own measure: its cache lookup and generate() use it

    return Llama.longest_token_prefix(a, b)


def _read_tokens(path: Path) -> tuple[int, ...] | None:
    try:
        with open(path, "rb") as f:
            head = f.read(len(_MAGIC) + 8)
            if len(head) < len(_MAGIC) + 8 or not head.startswith(_MAGIC):
                raise ValueError
            n = int.from_bytes(head[len(_MAGIC):], "little")
            raw = f.read(4 * n)
            if len(raw) != 4 * n:
                raise ValueError
        return tuple(np.frombuffer(raw, dtype=np.int32).tolist())
    except FileNotFoundError:  # evicted by another process meanwhile
        return None
    except (OSError, ValueError):
        path.unlink(missing_ok=True)  # damaged (a full disk, a killed writer): drop it, it is only a cache
        return None


def _read(path: Path):
    import llama_cpp

    try:
        blob = path.read_bytes()
        n = int.from_bytes(blob[len(_MAGIC):len(_MAGIC) + 8], "little")
        start = len(_MAGIC) + 8
        tokens = np.frombuffer(blob[start:start + 4 * n], dtype=np.int32).astype(np.intc)
        state = blob[start + 4 * n:]
        if not blob.startswith(_MAGIC) or len(tokens) != n or not state:
            raise ValueError
        os.utime(path)  # recently used: evicted last
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return None
    return llama_cpp.LlamaState(input_ids=tokens, scores=np.zeros((0, 0), np.single), n_tokens=n,
                                llama_state=state, llama_state_size=len(state), seed=0)


def _write(folder: Path, state, budget: int) -> None:
    tokens = np.asarray(state.input_ids[: state.n_tokens], dtype=np.int32)
    name = hashlib.sha256(tokens.tobytes()).hexdigest()[:24]
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(_MAGIC + len(tokens).to_bytes(8, "little") + tokens.tobytes())
            f.write(state.llama_state)
        os.replace(tmp, folder / f"{name}.state")
    except OSError:  # a full or read-only disk costs the next process its head start, nothing else
        tmp.unlink(missing_ok=True)
        return
    entries = []
    for path in folder.glob("*.state"):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        entries.append((st.st_mtime_ns, st.st_size, path))
    entries.sort()
    total = sum(size for _, size, _ in entries)
    while total > budget and len(entries) > 1:  # oldest first; the newest always stays
        _, size, path = entries.pop(0)
        path.unlink(missing_ok=True)
        total -= size
