"""The exercises of lessons 03 (delayed calls) and 04 (ordering): each check cell accepts the right answer
and rejects a wrong one with an AssertionError."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from nbcheck import run_with_answer  # noqa: E402

DELAYED = "03_delayed_calls.ipynb"
ORDERING = "04_ordering.ipynb"


def test_delayed_calls_accepts_the_right_count() -> None:
    # a (due +2 h), b (due +3 h, exactly when advance stops) and c (sent at +1 h, due +1.5 h) have run
    assert run_with_answer(DELAYED, "answer = 3") is None


def test_delayed_calls_rejects_a_count_that_misses_the_boundary() -> None:
    error = run_with_answer(DELAYED, "answer = 2")
    assert error is not None and "AssertionError" in str(error)


def test_ordering_accepts_the_arrival_order() -> None:
    right = 'answer = ["long job done", "call A", "D", "call B", "C"]'
    assert run_with_answer(ORDERING, right) is None


def test_ordering_rejects_the_sending_order() -> None:
    wrong = 'answer = ["long job done", "call A", "call B", "D", "C"]'
    error = run_with_answer(ORDERING, wrong)
    assert error is not None and "AssertionError" in str(error)
