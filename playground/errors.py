"""Errors the playground raises itself; failures of handlers stay `restate.TerminalError`, as with Restate."""

from __future__ import annotations

from dataclasses import dataclass

from . import views


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


@dataclass(frozen=True)
class DeadlockMember:
    invocation_id: str
    target: str  # Service/key/handler
    status: str
    waits_for: str  # in words


@dataclass(frozen=True)
class Deadlock:
    """A snapshot of one wait-for cycle. Displays as a graph in a notebook (see playground.render)."""

    members: list[DeadlockMember]
    edges: list[tuple[str, str, str]]  # (from, to, kind): kind is call, attach, queued or holds

    @property
    def invocation_ids(self) -> list[str]:
        return [m.invocation_id for m in self.members]

    def describe(self) -> str:
        lines = [f"  {m.invocation_id} {m.target} ({m.status}) {m.waits_for}" for m in self.members]
        first = self.members[0].invocation_id
        lines.append(f"Nothing in the cycle can finish on its own (Restate would wait forever). Break it with "
                     f"rt.cancel(id) on a member, e.g. rt.cancel({first!r}): the cancelled invocation fails "
                     f"with 409 and releases its lock; or rt.kill({first!r}) to end it and every call it waits on.")
        return "\n".join(lines)

    def dot(self) -> str:
        return views.drawing().deadlock_dot(self)

    def html(self) -> str:
        """The picture with the description under it, for a widget (see playground.widgets)."""
        return views.drawing().html(self.dot(), caption=self.describe())

    def _repr_mimebundle_(self, include: object = None, exclude: object = None, **kwargs: object) -> dict[str, str]:
        return views.drawing().mimebundle(self.dot(), self.describe())


class DeadlockError(StuckError):
    """A wait-for cycle between invocations; the message names every member and how to break it."""

    def __init__(self, message: str, invocation_id: str | None = None, deadlock: Deadlock | None = None) -> None:
        super().__init__(message, invocation_id)
        self.deadlock = deadlock

    def _repr_mimebundle_(self, include: object = None, exclude: object = None, **kwargs: object) -> dict[str, str]:
        return self.deadlock._repr_mimebundle_() if self.deadlock else {"text/plain": str(self)}


class StoreError(RuntimeError):
    """A store file that cannot be used: corrupt, locked by another process, from an incompatible version, or
    one that cannot be written (a full disk: the runtime then stops, showing what the file holds).

    The file is never written to when this is raised.
    """


class MissingHandlerWarning(UserWarning):
    """A store holds invocations of handlers that are not registered; they wait until they are."""
