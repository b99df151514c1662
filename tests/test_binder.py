"""The Binder environment, rebuilt the way repo2docker would (no Docker here): a fresh venv installed from
binder/requirements.txt only, then every notebook run under nbval in it. Slow (a full install), so it
runs in CI, where `CI` is set; elsewhere it skips with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def _python_312() -> str | None:
    """A Python 3.12 that runs (a pyenv shim may exist without working)."""
    candidates = [shutil.which("python3.12"), *map(str, Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))]
    for cand in filter(None, candidates):
        try:
            if subprocess.run([cand, "--version"], capture_output=True, timeout=10).returncode == 0:
                return cand
        except OSError:
            continue
    return None


def test_binder_files_pin_python_and_graphviz() -> None:
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.12"
    assert "graphviz" in (BINDER / "apt.txt").read_text().split()
    reqs = [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()]
    # repo2docker stages the repository, so this installs the playground, with the HTTP door's extra
    assert "-e .[http]" in reqs


@pytest.mark.skipif(not os.environ.get("CI"), reason="rebuilds the Binder environment from scratch (slow); runs in CI")
def test_the_notebooks_run_in_an_environment_built_from_binder_requirements(tmp_path: Path) -> None:
    python = _python_312() or sys.executable  # Binder uses 3.12 (runtime.txt) where this machine has it
    venv = tmp_path / "binder-venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    # as repo2docker does: from the repository root, with only binder/requirements.txt
    subprocess.run([*pip, "-r", str(BINDER / "requirements.txt")], cwd=ROOT, check=True)
    subprocess.run([*pip, "pytest", "nbval"], cwd=ROOT, check=True)  # the checker, not part of the image
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", "nbval_sanitize.cfg", "-p", "no:cacheprovider", "-q", "notebooks"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
