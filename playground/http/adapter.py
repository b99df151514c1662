"""What the HTTP door needs of the engine, in its own shapes.

Everything else in `playground.http` goes through these functions and the runtime's public methods; they
in turn use only the engine's read model and operations (playground/runtime/readmodel.py, operations.py).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import restate

from ..errors import DeadlockError, StuckError
from ..protocol import messages
from ..runtime import ids, operations, readmodel
from ..runtime.clock import to_datetime
from ..runtime.journal import call_target_id
from ..runtime.model import Failure, Target

if TYPE_CHECKING:
    from ..runtime.core import Engine as Runtime

__all__ = [
    "Failure",
    "JournalRow",
    "ServiceView",
    "Started",
    "await_result",
    "bad_invocation_id",
    "deployment_id",
    "derived_id",
    "find_idempotent",
    "find_workflow_run",
    "invocation_result",
    "invocation_status",
    "iso",
    "journal_rows",
    "now_ms",
    "purge",
    "services",
    "set_state",
    "start_call",
    "start_send",
    "state_of",
]

STUCK_GRACE_S = 0.5  # wall time a stuck HTTP request waits for other requests before it is answered


@dataclass(frozen=True)
class ServiceView:
    """A registered service as the admin API shows it: discovery's manifest entry and its revision."""

    name: str
    ty: str  # "SERVICE", "VIRTUAL_OBJECT" or "WORKFLOW"
    revision: int
    manifest: dict[str, Any]

    def handler_manifest(self, handler: str) -> dict[str, Any] | None:
        return next((h for h in self.manifest.get("handlers", []) if h.get("name") == handler), None)


@dataclass(frozen=True)
class Started:
    """An invocation created (or found) by the ingress."""

    invocation_id: str
    previously: bool  # an idempotency key or a workflow id that was seen before
    failure: Failure | None  # a failure the ingress reports at once (a workflow's run called twice)
    execution_time_ms: int | None  # delayed sends


@dataclass(frozen=True)
class JournalRow:
    """One journal entry with what sys_journal's JSON needs: the protocol message and the runtime's extras."""

    invocation_id: str
    index: int
    kind: str  # the protocol message name, e.g. "SetState", "CallCompletion"
    command: bool
    msg: Any
    due_ms: int | None  # Sleep: virtual wake-up time; OneWayCall: virtual start time
    invoked_id: str | None  # Call/OneWayCall: the callee's invocation id


def journal_rows(rt: Runtime) -> list[JournalRow]:
    """Every invocation's journal, in the order the read model lists it (the invocation records)."""
    out = []
    for inv in rt.all_invocations():
        for i, e in enumerate(inv.journal):
            kind = messages.NAMES_BY_ID.get(e.type_id, "")
            invoked = call_target_id(inv, e.msg) if kind in ("Call", "OneWayCall") else None
            out.append(JournalRow(inv.id, i, kind, messages.is_command(e.type_id), e.msg, e.due_ms, invoked))
    return out


def services(rt: Runtime) -> dict[str, ServiceView]:
    """Registered services, newest revision of each (the runtime's registry)."""
    return {name: ServiceView(name, reg.info.ty, reg.revision, readmodel.manifest(rt, name))
            for name, reg in readmodel.services(rt).items()}


def start_call(rt: Runtime, target: Target, body: bytes, headers: dict[str, str], idem: str | None) -> Started:
    """Create the invocation of a request-response call (what rt.generic_call does before it waits).
    Raises restate.TerminalError (404/400) for a target the ingress refuses."""
    inv, previous, failure = operations.start_call(rt, target, body, headers, idem)
    return Started(inv.id, previous, failure, None)


def start_send(rt: Runtime, target: Target, body: bytes, headers: dict[str, str], idem: str | None,
               delay_ms: int) -> Started:
    """A one-way send (what rt.generic_send does, given a delay in ms)."""
    handle = operations.start_send(rt, target, body, headers, idem, delay_ms)
    exec_ms = int(handle.execution_time.timestamp() * 1000) if handle.execution_time else None
    return Started(handle.invocation_id, handle.status == "PreviouslyAccepted", None, exec_ms)


async def await_result(rt: Runtime, invocation_id: str, what: str) -> bytes | Failure:
    """Wait for an invocation's result as an ingress await does: virtual time skips while idle, and an
    await that can never complete raises pg.StuckError / pg.DeadlockError."""
    inv = readmodel.invocation(rt, invocation_id)
    if inv is None:
        raise restate.TerminalError("not found", 404)
    while True:
        seen = _activity(rt)
        try:
            inv = await operations.await_done(rt, inv, what)
            return inv.result if inv.result is not None else b""
        except DeadlockError:
            raise  # only a cancel or kill can break a cycle: say so at once
        except StuckError:
            # A cell's await decides after a few loop turns; a client's next request (the promise that
            # unblocks this one, say) may still be on its way over HTTP. Give it a moment of wall time.
            await asyncio.sleep(STUCK_GRACE_S)
            if _activity(rt) == seen:
                raise


def _activity(rt: Runtime) -> tuple[int, int]:
    """What changes when the engine does something (the clock left out: a wall clock always moves)."""
    progress, _now, count = readmodel.change_stamp(rt)
    return progress, count


def invocation_result(rt: Runtime, invocation_id: str) -> tuple[bool, bytes | Failure | None] | None:
    """(completed, result) of an invocation, or None when the runtime does not know it."""
    inv = readmodel.invocation(rt, invocation_id)
    if inv is None:
        return None
    return inv.completed, inv.result


def invocation_status(rt: Runtime, invocation_id: str) -> str | None:
    inv = readmodel.invocation(rt, invocation_id)
    return inv.status if inv is not None else None


def find_idempotent(rt: Runtime, service: str, key: str | None, handler: str, idem: str) -> str | None:
    """The invocation id an idempotency key points at (the idempotency table)."""
    return readmodel.find_idempotent(rt, service, key, handler, idem)


def find_workflow_run(rt: Runtime, service: str, key: str) -> str | None:
    """The invocation id of a workflow's run (the workflow table)."""
    return readmodel.find_workflow_run(rt, service, key)


def derived_id(service: str, key: str | None, handler: str, idem: str | None, workflow_run: bool) -> str:
    """The id Restate derives for an idempotent invocation or a workflow run, existing or not."""
    return str(ids.derived(service, key, handler, idem, workflow_run))


def bad_invocation_id(text: str) -> str | None:
    """Restate's reason why `text` is not an invocation id (e.g. "bad format", "bad length"), or None."""
    try:
        ids.parse(text)
    except ids.BadInvocationId as exc:
        return exc.reason
    return None


def purge(rt: Runtime, invocation_id: str) -> None:
    """Forget a completed invocation now, with the idempotency key or workflow entry naming it."""
    operations.purge(rt, invocation_id)


def state_of(rt: Runtime, service: str, key: str) -> dict[str, bytes]:
    """One object's or workflow's K/V state, raw bytes."""
    return readmodel.state_of(rt, service, key)


def set_state(rt: Runtime, service: str, key: str, new_state: dict[str, bytes]) -> None:
    """Replace one object's or workflow's K/V state (Restate's state edit)."""
    operations.replace_state(rt, service, key, new_state)


def deployment_id(revision: int) -> str:
    """Restate's spelling of a deployment id (`dp_1` + 22 base62 digits), one per revision, the same every run.
    The runtime's tables say `dp_<revision>`; the CLI parses ids, so the door shows them in Restate's format."""
    n = int.from_bytes(hashlib.sha256(f"deployment {revision}".encode()).digest()[:16], "big")
    digits = []
    for _ in range(22):  # fixed width, as Restate writes a 128-bit id
        n, r = divmod(n, 62)
        digits.append(ids.ALPHABET[r])
    return "dp_1" + "".join(reversed(digits))


def now_ms(rt: Runtime) -> int:
    return int(rt.now.timestamp() * 1000)


def iso(ms: int) -> str:
    """Restate's RFC 3339 spelling of an instant: nanoseconds and Z."""
    return to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}000000Z"
