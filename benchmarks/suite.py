"""Every benchmark, one after the other, then the results table: ``python -m benchmarks suite``.

Runs each scenario in its own process with the arguments below (``--quick`` for a short check
of the whole chain, whose files are named ``quick_*`` and whose table is only printed), keeps
each one's JSON (and PNG) in ``benchmarks/results/``, and finally ``report --write`` fills the
table of ``benchmarks/RESULTS.md``. Options: ``--soak-minutes``
(30 for the soak of the targets), ``--only a,b`` / ``--skip a,b`` to choose scenarios. A
scenario that fails is reported and the others still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from benchmarks.relay_bench import RESULTS_DIR, load_average

BEFORE = "b20d773"
"""The relay as first committed (issue 4), measured beside the current one."""

FULL: list[tuple[str, list[str]]] = [
    ("relay_fanout", ["--viewers", "1,10,50,100,200", "--repeat", "2", "--seconds", "10"]),
    ("relay_fanout", ["--viewers", "30,100", "--variants", f"rtcc,rtcc@{BEFORE},naive",
                      "--repeat", "3", "--seconds", "10", "--name", "relay_before_after"]),
    ("relay_cameras", ["--cameras", "10,25,50", "--per-camera", "2"]),
    ("relay_ttff", ["--trials", "20", "--gops", "1,4"]),
    ("relay_latency", ["--viewers", "1,10,50,100"]),
    ("relay_soak", ["--viewers", "40", "--churn", "4", "--period", "10"]),
    ("relay_profile", ["--viewers", "100", "--seconds", "20"]),
    ("ingest_demux", ["--cameras", "4,10", "--width", "640", "--height", "360"]),
]
QUICK: list[tuple[str, list[str]]] = [
    ("relay_fanout", ["--viewers", "1,20", "--seconds", "4", "--warmup", "2"]),
    ("relay_cameras", ["--cameras", "4", "--seconds", "4", "--warmup", "2"]),
    ("relay_ttff", ["--trials", "3", "--gops", "1"]),
    ("relay_latency", ["--viewers", "4", "--seconds", "4", "--warmup", "2"]),
    ("relay_soak", ["--viewers", "6", "--churn", "2", "--period", "5", "--sample", "5",
                    "--per-process", "3"]),
    ("relay_profile", ["--viewers", "10", "--seconds", "5"]),
    ("ingest_demux", ["--cameras", "2", "--width", "640", "--height", "360", "--seconds", "4"]),
]
SAVES_ITS_OWN = {"relay_fanout", "relay_cameras", "relay_ttff", "relay_latency", "relay_soak",
                 "relay_profile"}


def run(name: str, arguments: list[str], prefix: str = "") -> bool:
    command = [sys.executable, "-m", "benchmarks", name, *arguments]
    print(f"== {' '.join(command[1:])}  (load average {load_average():.2f})", flush=True)
    started = time.monotonic()
    finished = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    print(f"== {name}: exit {finished.returncode} after {time.monotonic() - started:.0f} s",
          flush=True)
    if finished.returncode != 0:
        return False
    if name == "report":
        print(finished.stdout, flush=True)
    elif name not in SAVES_ITS_OWN:
        try:
            data = json.loads(finished.stdout)
        except json.JSONDecodeError:
            print(f"{name} printed no JSON", file=sys.stderr)
            return False
        data["command"] = "python -m benchmarks " + " ".join([name, *arguments])
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"{prefix}{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks suite", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--soak-minutes", type=float, default=6.0)
    parser.add_argument("--only", default="")
    parser.add_argument("--skip", default="")
    args = parser.parse_args(argv)
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    prefix = "quick_" if args.quick else ""
    failed = []
    for name, arguments in QUICK if args.quick else FULL:
        label = arguments[arguments.index("--name") + 1] if "--name" in arguments else name
        if (only and label not in only) or label in skip:
            continue
        if name == "relay_soak":
            arguments = [*arguments, "--minutes", str(0.5 if args.quick else args.soak_minutes)]
        if name in SAVES_ITS_OWN and prefix:
            arguments = [*arguments, "--name", prefix + label]
        if not run(name, arguments, prefix):
            failed.append(label)
    run("report", ["--prefix", prefix] if prefix else ["--write"])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
