"""Write tests/durations.json (seconds per test file) from a pytest JUnit XML report, for the xdist scheduling in
tests/conftest.py: `python -m tests.record_durations REPORT.xml`."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def file_of(classname: str) -> str | None:
    """tests.agent.test_x[.TestClass] -> tests/agent/test_x.py (the longest dotted prefix that is a file)."""
    parts = classname.split(".")
    for n in range(len(parts), 0, -1):
        path = Path(*parts[:n]).with_suffix(".py")
        if (ROOT / path).is_file():
            return path.as_posix()
    return None


def durations(report: Path) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        path = file_of(case.get("classname", ""))
        if path:
            seconds[path] = seconds.get(path, 0.0) + float(case.get("time") or 0.0)
    return {k: round(v, 1) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_file():
        print("usage: python -m tests.record_durations REPORT.xml (a pytest --junitxml report)", file=sys.stderr)
        return 2
    found = durations(Path(argv[0]))
    (ROOT / "tests" / "durations.json").write_text(json.dumps(found, indent=1) + "\n")
    print(f"tests/durations.json: {len(found)} files, {sum(found.values()):.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
