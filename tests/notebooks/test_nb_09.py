"""The exercise of lesson 09 (finding races): the check cell explores the teammate's design (a shared read)
and accepts the right answer, rejecting the wrong one with an AssertionError."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from nbcheck import run_with_answer

RACES = "09_finding_races.ipynb"


def test_09_accepts_that_a_shared_read_leaves_the_race() -> None:
    # a shared get_stock takes no lock, but buy's read and write are still two calls with a gap between
    assert run_with_answer(RACES, "answer = False") is None


def test_09_rejects_that_a_shared_read_fixes_it() -> None:
    error = run_with_answer(RACES, "answer = True")
    assert error is not None and "AssertionError" in str(error) and "still there" in str(error)
