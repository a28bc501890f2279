"""Run a benchmark by name: ``python -m benchmarks <name> [options]``.

Each benchmark is a module ``benchmarks/<name>.py`` with a ``main(argv)`` that prints JSON.
``python -m benchmarks`` lists them. Modules that only serve benchmarks (a server process, a load
generator) say ``__benchmark__ = False`` and are not listed.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    names = []
    for module in pkgutil.iter_modules([str(here)]):
        if module.name.startswith("_"):
            continue
        text = (here / f"{module.name}.py").read_text(encoding="utf-8")
        if "\ndef main(" in text and "\n__benchmark__ = False" not in text:
            names.append(module.name)
    return sorted(names)


def main() -> None:
    names = available()
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: python -m benchmarks <name> [options]\n\nbenchmarks: " + ", ".join(names))
        sys.exit(0 if len(sys.argv) >= 2 else 2)
    name = sys.argv[1]
    if name not in names:
        print(f"unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"benchmarks.{name}")
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
