"""Errors the playground raises itself; failures of handlers stay `restate.TerminalError`, as with Restate."""

from __future__ import annotations


class NotReady(Exception):
    """The invocation has not completed yet (Restate's 470 'the response is not ready yet')."""

    code = 470


class StuckError(Exception):
    """An await that can never complete: it waits on something nothing will ever finish.

    The runtime is left as it is, so the stuck invocations can be inspected, and cancelled or killed.
    """

    def __init__(self, message: str, invocation_id: str | None = None) -> None:
        super().__init__(message)
        self.invocation_id = invocation_id


class DeadlockError(StuckError):
    """A wait-for cycle between invocations; the message names every member."""
