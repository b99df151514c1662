"""The exercises of lessons 07 (idempotency) and 08 (durable execution): the check cell accepts the right
answer and rejects a wrong one with an AssertionError."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from nbcheck import run_with_answer

IDEMPOTENCY = "07_idempotency.ipynb"
DURABLE = "08_durable_execution.ipynb"


def test_07_accepts_the_right_balance() -> None:
    # 10 (key "a"), the repeat with key "a" is ignored, 30 (key "b"), then "a" is forgotten after 24 h: 40
    assert run_with_answer(IDEMPOTENCY, "answer = 80") is None


def test_07_rejects_adding_every_deposit() -> None:
    error = run_with_answer(IDEMPOTENCY, "answer = 100")
    assert error is not None and "AssertionError" in str(error)


def test_08_accepts_the_right_count() -> None:
    # the card charge inside ctx.run once, the audit line outside it on each of the three attempts
    assert run_with_answer(DURABLE, "answer = 4") is None


def test_08_rejects_counting_each_side_effect_once() -> None:
    error = run_with_answer(DURABLE, "answer = 2")
    assert error is not None and "AssertionError" in str(error)
