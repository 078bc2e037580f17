"""`make test` splits the suite between pytest-xdist workers one whole file at a time: a file's module fixture
(a trained policy, a fused model) must be built once per run, not once per worker that happens to get one of
its tests. Checked by running pytest with the Makefile's own flags on a generated suite that logs each setup."""

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import HANG_S

ROOT = Path(__file__).resolve().parents[1]

PROBE = '''
import os
import pytest

@pytest.fixture(scope="module")
def built():
    with open(os.environ["PROBE_LOG"], "a") as f:
        f.write(f"{__name__} {os.getpid()}\\n")
    return 1

@pytest.mark.parametrize("i", range(6))
def test_uses_the_module_fixture(built, i):
    assert built == 1
'''


def makefile_xdist_flags() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    workers = re.search(r"^TEST_WORKERS \?= (\d+)$", text, re.M).group(1)
    flags = re.search(r"^XDIST := (.+)$", text, re.M).group(1)
    return flags.replace("$(TEST_WORKERS)", workers).split()


def test_each_file_builds_its_module_fixture_once_under_the_makefile_flags(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    # the project's ordering hook, as `make test` loads it
    (suite / "conftest.py").write_text("from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n")
    for name in ("test_probe_one", "test_probe_two", "test_probe_three"):
        (suite / f"{name}.py").write_text(PROBE)
    log = tmp_path / "setups.log"
    env = {**os.environ, "PROBE_LOG": str(log), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(suite),
                          *makefile_xdist_flags(), str(suite)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=HANG_S)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "18 passed" in out.stdout
    setups = [line.split()[0] for line in log.read_text().splitlines()]
    assert sorted(setups) == ["test_probe_one", "test_probe_three", "test_probe_two"], setups
