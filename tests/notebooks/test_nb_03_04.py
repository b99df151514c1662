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


def test_ordering_accepts_every_order_the_explorer_finds() -> None:
    # "call A" and "C" arrive at once, in either order; "call B" (after Alice's sleep) and the delayed "D" ten
    # seconds later, in either order: a sleep's end and a delayed send's arrival due together are not ordered
    right = ('answer = {("call A", "C", "call B", "D"), ("call A", "C", "D", "call B"), '
             '("C", "call A", "call B", "D"), ("C", "call A", "D", "call B")}')
    assert run_with_answer(ORDERING, right) is None


def test_ordering_rejects_an_order_with_b_before_a() -> None:
    wrong = ('answer = {("call A", "C", "call B", "D"), ("call A", "C", "D", "call B"), '
             '("C", "call A", "call B", "D"), ("C", "call A", "D", "call B"), ("call B", "call A", "C", "D")}')
    error = run_with_answer(ORDERING, wrong)
    assert error is not None and "AssertionError" in str(error) and "cannot happen" in str(error)


def test_ordering_rejects_the_sending_order_alone() -> None:
    error = run_with_answer(ORDERING, 'answer = {("call A", "C", "call B", "D")}')
    assert error is not None and "AssertionError" in str(error) and "3 more can happen" in str(error)


def test_ordering_asks_for_a_set_of_orders_when_given_one_order() -> None:
    error = run_with_answer(ORDERING, 'answer = ("call A", "C", "call B", "D")')
    assert error is not None and "Write a set of orders" in str(error)
