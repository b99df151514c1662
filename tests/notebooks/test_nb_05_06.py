"""The exercises of lessons 05 (deadlocks) and 06 (workflows): each check cell accepts the right answer and
rejects a wrong one with an AssertionError."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from nbcheck import run_with_answer

DEADLOCKS = "05_deadlocks.ipynb"
WORKFLOWS = "06_workflows.ipynb"


def test_deadlocks_accepts_the_right_answer() -> None:
    assert run_with_answer(DEADLOCKS, 'answer = {"c"}') is None


def test_deadlocks_rejects_a_wrong_answer() -> None:
    error = run_with_answer(DEADLOCKS, 'answer = {"c", "d"}')
    assert error is not None and "AssertionError" in str(error)


def test_workflows_accepts_the_right_answer() -> None:
    assert run_with_answer(WORKFLOWS, "answer = 3") is None


def test_workflows_rejects_a_wrong_answer() -> None:
    error = run_with_answer(WORKFLOWS, "answer = 5")
    assert error is not None and "AssertionError" in str(error)
