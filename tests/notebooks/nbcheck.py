"""Run a lesson notebook with a given exercise answer, to test that its check cell accepts the right
answer and rejects a wrong one.

Convention for every lesson: the exercise cell is tagged `exercise` and assigns `answer = ...` (Ellipsis:
not answered yet); the check cell after it (tagged `check`) prints a hint while `answer is ...` and
otherwise asserts.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def run_with_answer(name: str, answer_source: str, timeout: int = 120) -> CellExecutionError | None:
    """Execute notebooks/<name> with the exercise cell replaced by `answer_source`. Returns the error of
    the first failing cell, or None when every cell ran."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    exercise = [c for c in nb.cells if "exercise" in c.get("metadata", {}).get("tags", [])]
    assert len(exercise) == 1, f"{name} must have exactly one cell tagged 'exercise'"
    assert any("check" in c.get("metadata", {}).get("tags", []) for c in nb.cells), f"{name} has no 'check' cell"
    exercise[0].source = answer_source
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        return exc
    return None
