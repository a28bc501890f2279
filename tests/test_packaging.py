"""The wheel holds the programs, the consoles' static files and the default configurations, and
builds without setuptools deprecation warnings."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked(folder: str) -> list[str]:
    listing = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    return [line for line in listing.splitlines() if line]


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.slow
def test_wheel_holds_static_files_and_configs(tmp_path: Path) -> None:
    # Built from a copy of the tracked files: what a release holds, and no build/ left behind.
    source = tmp_path / "source"
    for name in _tracked("."):
        if name.startswith(("tests/", "benchmarks/")):
            continue  # not packaged (and the tests' secret canaries stay in one place)
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if _installed("build"):
        command = [sys.executable, "-m", "build", "--outdir", str(out), str(source)]
    else:  # the test extras bring `build`; pip builds the same wheel
        command = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--wheel-dir",
                   str(out), str(source)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "SetuptoolsDeprecationWarning" not in output, output
    (wheel,) = out.glob("rtcc-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    static = [p for p in _tracked("console_web") if "/static/" in p]
    assert len(static) > 20
    assert sorted(set(static) - names) == []
    assert {"server/static/api_docs.html", "server/static/api_docs.js"} <= names
    configs = {f"rtcc-{wheel.name.split('-')[1]}.data/data/share/rtcc/configs/{Path(p).name}"
               for p in _tracked("configs")}
    assert configs
    assert configs <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert b"License-Expression: Apache-2.0" in metadata
