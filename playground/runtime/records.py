"""Records: idempotency keys, workflow runs and workflows' durable promises. Each maps a name Restate
derives (service, key, handler, idempotency key; or workflow and key) to the invocation it stands for, until
that invocation's retention ends; promises keep their value, and who awaits the ones not yet completed."""

from __future__ import annotations

from collections.abc import Container

import restate

from .model import Failure, Invocation

WorkflowKey = tuple[str, str]  # (workflow service, workflow id)
IdempotencyKey = tuple[str, str, str, str]  # (service, key or "", handler, idempotency key)
Waiter = tuple[Invocation, int]  # an invocation and the completion id its GetPromise awaits


class Records:
    """The tables; the engine stores what changed (see the store's change sets)."""

    def __init__(self) -> None:
        self.idempotency: dict[IdempotencyKey, str] = {}
        self.workflow_runs: dict[WorkflowKey, str] = {}
        self.promises: dict[WorkflowKey, dict[str, bytes | Failure]] = {}
        self.promise_waiters: dict[tuple[str, str, str], list[Waiter]] = {}

    # ------------------------------------------------------------------ idempotency keys and workflow runs
    def idempotent(self, key: IdempotencyKey) -> str | None:
        """The invocation id an idempotency key stands for."""
        return self.idempotency.get(key)

    def run_of(self, wk: WorkflowKey) -> str | None:
        """The invocation id of a workflow's run."""
        return self.workflow_runs.get(wk)

    def remember_idempotent(self, key: IdempotencyKey, invocation_id: str) -> None:
        self.idempotency[key] = invocation_id

    def remember_workflow_run(self, wk: WorkflowKey, invocation_id: str) -> None:
        self.workflow_runs[wk] = invocation_id

    def expire_idempotency(self, key: IdempotencyKey, invocation_id: str) -> bool:
        """The key's retention ended: forget it if it still names this invocation (True)."""
        if self.idempotency.get(key) != invocation_id:
            return False
        del self.idempotency[key]
        return True

    def expire_workflow_run(self, wk: WorkflowKey, invocation_id: str) -> bool:
        """The run's retention ended: forget it, and its promises, if it is still this invocation (True)."""
        if self.workflow_runs.get(wk) != invocation_id:
            return False
        del self.workflow_runs[wk]
        self.promises.pop(wk, None)
        return True

    def forget_invocation(self, invocation_id: str) -> None:
        """Every idempotency key and workflow run naming this invocation goes."""
        for table in (self.idempotency, self.workflow_runs):
            for k in [k for k, v in table.items() if v == invocation_id]:
                del table[k]  # type: ignore[arg-type]

    # ------------------------------------------------------------------ durable promises
    def promises_of(self, wk: WorkflowKey) -> dict[str, bytes | Failure]:
        """One workflow's completed promises, by name."""
        return self.promises.setdefault(wk, {})

    def await_promise(self, wk: WorkflowKey, name: str, waiter: Invocation, completion_id: int) -> None:
        """`waiter` awaits a promise not completed yet: it is answered when the promise is completed."""
        self.promise_waiters.setdefault((*wk, name), []).append((waiter, completion_id))

    def complete_promise(self, wk: WorkflowKey, name: str, value: bytes | Failure) -> list[Waiter]:
        """Complete a promise; its waiters, to be answered. Completing one twice is Restate's 409."""
        self.check_open(wk, name)
        self.promises.setdefault(wk, {})[name] = value
        return self.promise_waiters.pop((*wk, name), [])

    def check_open(self, wk: WorkflowKey, name: str, completing: Container[tuple[str, str, str]] = ()) -> None:
        """Restate's 409 for a promise completed already (or to be, by an operation `completing` it)."""
        if name in self.promises.get(wk, ()) or (*wk, name) in completing:
            raise restate.TerminalError("promise was already completed", 409)
