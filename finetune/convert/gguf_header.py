"""A GGUF file's header, read without its arrays: the metadata keys, the tensor names, and each array's length.

gguf.GGUFReader (and transformers, built on it) turns every element of every array into a numpy view: Qwen's
151,936-token vocabulary made reading a GGUF's architecture take 14-22 s on 2 cores. The header itself is a
few hundred keys and tensor records; arrays are skipped by length (strings walked, numbers jumped over).
Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (version 2 and 3: 64-bit counts).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

from trader_core.errors import ModelError

MAGIC = b"GGUF"
# value type -> struct format of one scalar (8: string, 9: array are read by hand)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class GgufHeader:
    version: int
    values: dict[str, object]  # scalar and string metadata
    array_lengths: dict[str, int]  # array metadata: only how many elements (tokenizer.ggml.tokens: the vocabulary)
    tensor_names: list[str] = field(default_factory=list)


class _Cursor:
    def __init__(self, buf: mmap.mmap, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise ModelError(f"{self.path} is cut short (its GGUF header ends mid-record); download or build it again")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.take("<Q")
        if self.pos + n > len(self.buf):
            raise ModelError(f"{self.path} is cut short (its GGUF header ends mid-string); download or build it again")
        text = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return text

    def skip_array(self) -> int:
        kind, count = self.take("<I"), self.take("<Q")
        if kind == _STRING:
            for _ in range(count):
                self.pos += 8 + struct.unpack_from("<Q", self.buf, self.pos)[0]
        elif kind in _SCALARS:
            self.pos += count * struct.calcsize(_SCALARS[kind])
        else:
            raise ModelError(f"{self.path}: an array of GGUF type {kind} is not supported in a header")
        return count

    def value(self, kind: int):
        if kind == _STRING:
            return self.string()
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        raise ModelError(f"{self.path}: unknown GGUF value type {kind}; is it a GGUF file?")


def read_gguf_header(path: str | Path) -> GgufHeader:
    """The metadata and tensor names of a GGUF (versions 2 and 3), in milliseconds; a damaged file is one
    ModelError line."""
    path = Path(path)
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if buf[:4] != MAGIC:
                raise ModelError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
            cur = _Cursor(buf, path)
            cur.pos = 4
            version = cur.take("<I")
            if version not in (2, 3):
                raise ModelError(f"{path} is GGUF version {version}; versions 2 and 3 are read here")
            n_tensors, n_kv = cur.take("<Q"), cur.take("<Q")
            values: dict[str, object] = {}
            lengths: dict[str, int] = {}
            for _ in range(n_kv):
                key, kind = cur.string(), cur.take("<I")
                if kind == _ARRAY:
                    lengths[key] = cur.skip_array()
                else:
                    values[key] = cur.value(kind)
            names = []
            for _ in range(n_tensors):
                names.append(cur.string())
                n_dims = cur.take("<I")
                cur.pos += 8 * n_dims + 4 + 8  # dims, ggml type, offset
            return GgufHeader(version=version, values=values, array_lengths=lengths, tensor_names=names)
    except (OSError, ValueError, struct.error) as exc:  # ValueError: mmap of an empty file; struct: cut short
        raise ModelError(f"cannot read {path} as GGUF: {exc}") from None
