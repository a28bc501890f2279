"""Long fuzz run: the tests of ``tests/fuzz`` with many more, random inputs.

    python -m benchmarks fuzz_long [--examples 3000] [-k EXPRESSION]

Runs pytest on ``tests/fuzz`` with ``RTCC_FUZZ_PROFILE=long`` (random, not derandomized, so each
run tries new inputs) and prints one JSON document: per test its outcome and seconds, and for a
failure the falsifying example Hypothesis printed. A crash found here is fixed in the parser and
its input kept in the test as an ``@example``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET  # the junit file pytest just wrote
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _results(junit: Path) -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        outcome = "skipped" if case.find("skipped") is not None else "passed"
        entry: dict[str, Any] = {"test": f"{case.get('classname')}::{case.get('name')}",
                                 "seconds": round(float(case.get("time") or 0.0), 2)}
        if problem is not None:
            outcome = problem.tag
            text = problem.text or ""
            start = text.find("Falsifying")
            entry["detail"] = (text[start:] if start >= 0 else text)[-2000:]
        entry["outcome"] = outcome
        tests.append(entry)
    return tests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks fuzz_long", description=__doc__)
    parser.add_argument("--examples", type=int, default=3000,
                        help="inputs tried per test (Hypothesis max_examples)")
    parser.add_argument("-k", dest="select", default="", help="pytest -k expression")
    args = parser.parse_args(argv)
    env = {**os.environ, "RTCC_FUZZ_PROFILE": "long", "RTCC_FUZZ_EXAMPLES": str(args.examples),
           "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as folder:
        junit = Path(folder) / "fuzz.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "--timeout=0", f"--junitxml={junit}", "tests/fuzz"]
        if args.select:
            command += ["-k", args.select]
        started = time.monotonic()
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                             check=False)
        elapsed = time.monotonic() - started
        tests = _results(junit) if junit.exists() else []
    failed = [test for test in tests if test["outcome"] != "passed"]
    print(json.dumps({
        "benchmark": "fuzz_long",
        "examples_per_test": args.examples,
        "seconds": round(elapsed, 1),
        "tests": len(tests),
        "failed": len(failed),
        "pytest_exit_code": run.returncode,
        "results": tests,
        "output_tail": run.stdout[-2000:] if run.returncode and not tests else "",
    }, indent=2))


if __name__ == "__main__":
    main()
