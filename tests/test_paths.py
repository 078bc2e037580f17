"""trader_core.paths: the home folder, output folders and atomic writes fail as one line and leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import HANG_S
from trader_core.errors import ConfigError, StorageError, TraderError
from trader_core.paths import (atomic_write_text, prepare_out_dir, prepare_out_file, read_text_file,
                               trader_home)


@pytest.mark.parametrize("home,needle", [
    ("/dev/null", "is a file"),
    ("/proc/trader-home", "cannot be created"),
    ("{tmp}/afile", "is a file"),
    ("{tmp}/afile/below", "cannot be created"),
])
def test_trader_home_that_cannot_be_a_folder_is_one_config_error(tmp_path, monkeypatch, home, needle):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("TRADER_HOME", home.format(tmp=tmp_path))
    with pytest.raises(ConfigError, match=needle) as err:
        trader_home()
    assert "\n" not in str(err.value) and "TRADER_HOME" in str(err.value)


def test_trader_home_is_created(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADER_HOME", str(tmp_path / "a" / "b"))
    assert trader_home() == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()


def test_prepare_out_dir_creates_missing_parents_and_refuses_files(tmp_path):
    out = prepare_out_dir(tmp_path / "missing" / "deeper" / "run")
    assert out.is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="existing file"):
        prepare_out_dir(tmp_path / "file")
    with pytest.raises(ConfigError, match="part of its path is a file"):
        prepare_out_dir(tmp_path / "file" / "run")
    with pytest.raises(ConfigError, match="is a folder"):
        prepare_out_file(tmp_path / "missing")
    assert prepare_out_file(tmp_path / "new" / "model.gguf").parent.is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_prepare_out_dir_refuses_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="cannot"):
            prepare_out_dir(ro)
    finally:
        ro.chmod(0o700)


def test_read_text_file_refuses_folders_and_binaries(tmp_path):
    (tmp_path / "bin").write_bytes(b"\x00\x01\xff\xfe" * 10)
    (tmp_path / "latin").write_bytes("caf\xe9".encode("latin-1"))
    for path, needle in ((tmp_path, "is a folder"), (tmp_path / "bin", "binary"), (tmp_path / "latin", "UTF-8"),
                         (tmp_path / "nope", "does not exist")):
        with pytest.raises(TraderError, match=needle):
            read_text_file(path, "risk config")


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "state.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["state.json"]


def test_atomic_write_on_a_full_file_system_keeps_the_old_file_and_no_temp(tmp_path):
    """A write that hits the size limit (EFBIG, what a full disk looks like to one writer) fails as one
    StorageError line; the previous content survives and no .tmp file is left."""
    path = tmp_path / "state.json"
    path.write_text("old")
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
            "from trader_core.paths import atomic_write_text\n"
            "from trader_core.errors import StorageError\n"
            "try:\n"
            f"    atomic_write_text({str(path)!r}, 'x' * 100_000)\n"
            "except StorageError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_S)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"cannot write {path}: file too large")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["state.json"]
