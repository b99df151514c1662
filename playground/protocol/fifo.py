"""A first-in first-out queue on a list, for the per-attempt queues of the driver."""

from __future__ import annotations

from typing import Any


class Fifo:
    """A first-in first-out queue on a list: 100 bytes where an empty deque costs over 600 (an attempt has
    several, and thousands of attempts may be in flight)."""

    __slots__ = ("_head", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._head = 0

    def append(self, item: Any) -> None:
        self._items.append(item)

    def popleft(self) -> Any:
        items, head = self._items, self._head
        if head >= len(items):
            raise IndexError("pop from an empty Fifo")
        item = items[head]
        if head + 1 == len(items):
            items.clear()
            self._head = 0
        else:
            items[head] = None
            self._head = head + 1
        return item

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._items[self._head + i]

    def __len__(self) -> int:
        return len(self._items) - self._head

    def __bool__(self) -> bool:
        return len(self._items) > self._head
