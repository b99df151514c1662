"""Fifo, the small first-in first-out queue an attempt keeps its pending input and the SDK's delays in."""

from __future__ import annotations

import pytest

from playground.protocol.fifo import Fifo


def test_items_leave_in_the_order_they_came() -> None:
    q = Fifo()
    for item in "abc":
        q.append(item)
    assert (len(q), bool(q), q[0], q[1]) == (3, True, "a", "b")
    assert q.popleft() == "a"
    q.append("d")
    assert [q.popleft() for _ in range(len(q))] == ["b", "c", "d"]
    assert (len(q), bool(q)) == (0, False)


def test_an_empty_fifo_refuses_to_pop_or_index_and_works_again_after_an_append() -> None:
    q = Fifo()
    with pytest.raises(IndexError):
        q.popleft()
    q.append(1)
    assert q.popleft() == 1
    with pytest.raises(IndexError):
        q.popleft()
    with pytest.raises(IndexError):
        q[0]
    q.append(2)
    assert (q[0], len(q)) == (2, 1)


def test_a_long_run_of_appends_and_pops_keeps_the_order() -> None:
    q, expected = Fifo(), []
    for i in range(1000):
        q.append(i)
        if i % 3 == 0:
            expected.append(q.popleft())
    expected.extend(q.popleft() for _ in range(len(q)))
    assert expected == list(range(1000))
