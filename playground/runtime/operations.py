"""Operations on the engine for the layers above it that are not cells (the HTTP ingress and admin API):
the same steps pg.Runtime's own methods take, as public functions, so no layer above calls the engine's
private methods."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import Failure, Invocation, SendHandle, Target

if TYPE_CHECKING:
    from .core import Engine


def start_call(rt: Engine, target: Target, body: bytes, headers: dict[str, str] | None,
               idem: str | None) -> tuple[Invocation, bool, Failure | None]:
    """Create (or find, for an idempotency key or a workflow run) the invocation of an ingress call, stored
    before this returns: (invocation, previously accepted, failure for the call, e.g. a workflow's 409).
    Raises restate.TerminalError (404/400) for a target the ingress refuses."""
    inv, previous, failure = rt._lifecycle.invoke(target, body, headers, idem, 0, invoked_by=None, strict=True)
    rt._commit()
    return inv, previous, failure


def start_send(rt: Engine, target: Target, body: bytes, headers: dict[str, str] | None, idem: str | None,
               delay_ms: int) -> SendHandle:
    """A one-way send from the ingress, `delay_ms` after now."""
    return rt._ingress.send(target, body, headers, idem, delay_ms)


async def await_done(rt: Engine, inv: Invocation, what: str) -> Invocation:
    """Wait for `inv` as an ingress await does (time skips while idle; an await that can never complete
    raises pg.StuckError or pg.DeadlockError); its record, completed."""
    return await rt._waiter.await_done(inv, what)


def purge(rt: Engine, invocation_id: str) -> None:
    """Forget a completed invocation now, with the idempotency key or workflow entry naming it."""
    rt._lifecycle.drop(rt._invocations[invocation_id])
    rt._commit()


def replace_state(rt: Engine, service: str, key: str, new_state: dict[str, bytes]) -> None:
    """Replace one object's or workflow's K/V state (Restate's state edit); stored before this returns."""
    if new_state:
        rt._state[(service, key)] = dict(new_state)
    else:
        rt._state.pop((service, key), None)
    rt._dirty_state.add((service, key))
    rt._commit()
