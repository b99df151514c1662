"""The notebooks' stored outputs: what a newcomer sees before running anything, and what nbval compares.

nbval compares a cell's outputs only when the stored cell has run (it skips cells without an execution count),
and JupyterLab sanitizes the HTML of a notebook it does not trust yet, which turns an SVG wrapped in HTML
into loose text. So every code cell must be stored run, and graphs stored as images.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_code_cell_is_stored_run_so_nbval_compares_its_outputs(path: Path) -> None:
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    unrun = [i for i, c in enumerate(cells) if c.get("execution_count") is None]
    assert not unrun, f"{path.name}: code cells {unrun} have no stored run; execute the notebook and save it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_graphs_are_stored_as_images_that_show_in_an_untrusted_notebook(path: Path) -> None:
    outputs = [o for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", [])]
    for o in outputs:
        data = o.get("data", {})
        html = "".join(data.get("text/html", ""))
        assert "<svg" not in html, f"{path.name}: an SVG stored inside HTML shows as loose text until trusted"
        if "image/svg+xml" in data:  # JupyterLab draws SVG images only in trusted notebooks
            assert "image/png" in data, f"{path.name}: a graph without its PNG shows only as text until trusted"
