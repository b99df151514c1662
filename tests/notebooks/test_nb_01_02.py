"""Lessons 01 and 02: each check cell accepts the right answer and rejects a wrong one."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from nbcheck import run_with_answer

REQUEST_RESPONSE = "01_request_response.ipynb"
SENDING = "02_sending_messages.ipynb"


def test_01_accepts_the_right_journal_length() -> None:
    assert run_with_answer(REQUEST_RESPONSE, "answer = 14") is None


def test_01_rejects_a_wrong_journal_length() -> None:
    error = run_with_answer(REQUEST_RESPONSE, "answer = 12")
    assert error is not None and "AssertionError" in str(error)


def test_02_accepts_points_from_a_single_delivered_send() -> None:
    assert run_with_answer(SENDING, "answer = 10") is None


def test_02_rejects_points_counted_once_per_attempt() -> None:
    error = run_with_answer(SENDING, "answer = 40")
    assert error is not None and "AssertionError" in str(error)
