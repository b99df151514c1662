"""The embedded Restate server: it owns invocations, journals, per-key locks and inboxes, state, timers,
idempotency and workflow records, and drives each attempt of the SDK's app over the service protocol.

Everything happens on the caller's event loop. An attempt is "busy" until the SDK is blocked on the
runtime: its VM asked to wait for external progress (observed by sdk_hooks), every message it sent has
been handled, and no ctx.run closure is executing. When no attempt is busy and no timer is due, nothing
can progress at the current time. That is the point where the virtual clock may jump to
the next timer, where `settle()` returns, and where an ingress await that is still waiting raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import restate

from ..errors import Deadlock
from ..protocol import sdk_hooks
from ..protocol.deployment import AsgiDeployment, ServiceInfo, parse_manifest
from . import ids
from .attempts import Attempts
from .clock import check_due, make_clock, to_datetime
from .commands import Commands
from .common import Registered, duration_ms
from .explain import Explainer
from .faults import Faults
from .ingress import Ingress
from .interrupts import sigint_guard
from .invocations import Lifecycle
from .keys import Keys
from .model import Invocation, SendHandle, Target, status_counts
from .records import Records
from .recovery import Recovery
from .registry import Registry
from .requests import IngressOrder
from .scheduler import Scheduler
from .store import open_store
from .timers import Timers
from .waitfor import WaitForGraph
from .waiting import Waiter


class Engine:
    """The embedded Restate server: everything but the views (pg.Runtime, in playground.facade, adds those)."""

    def __init__(self, *services: Any, clock: str = "virtual", start: datetime | None = None, seed: int = 0,
                 mode: str = "normal", store: Any = None) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int (it fixes the invocation ids), not {type(seed).__name__}")
        if mode not in ("normal", "always_suspend"):
            raise ValueError(f"mode must be 'normal' or 'always_suspend', not {mode!r}")
        # always_suspend: every attempt gets its journal and then a closed request body, so the SDK suspends
        # at each await on something new and resumes by replay (Restate's inactivity-timeout-0 setting)
        self.mode = mode
        sdk_hooks.install()
        self._clock = make_clock(clock, start)
        self._now: Callable[[], int] = self._clock.now_ms  # (the clock's own method: called a dozen times per call)
        self._seed = seed
        # decides the order of events where Restate leaves it open (default: as the engine posts them)
        self.scheduler = Scheduler(now=self._clock.now_ms, busy=self._any_busy)
        self._requests = IngressOrder(self.scheduler)  # ingress requests in flight together: their own sources
        self._seeded_ids = ids.SeededIds(seed)  # plain invocations' ids (a restore continues the sequence)
        self._registry = Registry()  # the services this engine knows (see registry.py)
        # what changed in the current event, written to the store when it ends (see recovery.py)
        self._dirty: set[Invocation] = set()
        self._dirty_state: set[tuple[str, str]] = set()
        self._dirty_promises: set[tuple[str, str]] = set()
        self._dirty_services: set[str] = set()
        self._to_start: list[Invocation] = []  # restored invocations to start once a loop runs
        self._closed: str | None = None
        self._store_failure: str | None = None  # why the store could not be written (the runtime then stops)
        self._keys = Keys(WaitForGraph())  # locks and inboxes (see keys.py)
        self._attempts = Attempts(self)  # the attempts in flight and what the SDK sends them (see attempts.py)
        self._commands = Commands(self)  # what each stored command does (see commands.py)
        self._explainer = Explainer(self)  # why an await cannot finish (see explain.py)
        self._waiter = Waiter(self)  # idleness, time skipping, awaits that raise instead of hanging (waiting.py)
        self._lifecycle = Lifecycle(self)  # invocations from creation to retention (see invocations.py)
        self._ingress = Ingress(self)  # the cells' calls and operations; pg.Runtime forwards (see ingress.py)
        self._timers = Timers(self._clock, self.scheduler, lambda: self._commit(), lambda: self._closed is not None)
        self._reset_tables()
        self.faults = Faults(self)
        self._progress = 0  # bumped by every delivery, start and completion: "did anything happen?"
        self._recovery = Recovery(self)  # the store's change sets, close, restart, restore (see recovery.py)
        self._commit: Callable[[], None] = lambda: None  # ends an event (bound to the store by _open)
        self._open(store, services)

    def _open(self, store: Any, services: tuple[Any, ...]) -> None:
        """Open the store, register `services`, and restore what the store holds."""
        self._store = open_store(store, self)
        self._recovery.bind_store()
        snapshot = self._store.load()
        commit, self._commit = self._commit, lambda: None  # nothing is written before the records are restored
        try:
            if services:
                self.register(*services)
            if snapshot is not None:
                self._recovery.restore_stored(snapshot)  # a record it cannot use: StoreError, the file untouched
        finally:
            self._commit = commit
        self._commit()  # a new store starts with the clock and the services

    def _any_busy(self) -> bool:
        """Whether an attempt is running handler code (the scheduler's one-at-a-time strategies ask)."""
        return self._waiter.any_busy()

    def _reset_tables(self) -> None:
        """The in-memory tables, empty (at construction, and before a restore from the store)."""
        self._timers.clear()
        self.scheduler.clear()
        self._requests.clear()
        self._invocations: dict[str, Invocation] = {}
        self._by_start_id: dict[bytes, Invocation] = {}
        self._state: dict[tuple[str, str], dict[str, bytes]] = {}
        self._records = Records()  # idempotency keys, workflow runs, promises (see records.py)
        self._wait = WaitForGraph()
        self._keys.clear(self._wait)
        self._attempts.clear()
        # invocations whose last attempt failed on a call or send Restate cannot route: the target it named
        self._rejected_calls: dict[str, Target] = {}

    # ------------------------------------------------------------------ registration
    def register(self, *services: Any) -> None:
        """Register services (a new revision for a name seen before: new invocations use it, running ones keep
        theirs)."""
        if not services:
            raise ValueError("register() needs at least one restate.Service, VirtualObject or Workflow")
        names: set[str] = set()
        for s in services:
            if not isinstance(s, (restate.Service, restate.VirtualObject, restate.Workflow)):
                what = getattr(s, "__name__", type(s).__name__)
                hint = (" (pass the service object that the handler was declared on, not the handler)"
                        if callable(s) else "")
                raise TypeError(f"register() takes restate.Service, VirtualObject or Workflow objects; "
                                f"got {what}{hint}")
            if not s.name:
                raise ValueError("a service needs a non-empty name, e.g. restate.Service('Greeter')")
            if s.name in names:
                raise ValueError(f"two services named {s.name!r} in one register() call")
            names.add(s.name)
        if self._closed is not None:
            self._recovery.check_open()
        deployment = AsgiDeployment(restate.app(services=list(services)))
        manifest = deployment.discover()
        infos = parse_manifest(manifest)
        for s in services:
            self._registry.add_revision(s, infos[s.name], deployment,
                                        next(m for m in manifest["services"] if m["name"] == s.name))
            self._dirty_services.add(s.name)
        self._recovery.rebind(names)
        self._commit()

    def services(self) -> dict[str, ServiceInfo]:
        return {name: reg.info for name, reg in self._registry.services.items()}

    # ------------------------------------------------------------------ clock
    @property
    def now(self) -> datetime:
        return to_datetime(self._clock.now_ms())

    @property
    def clock(self) -> str:
        return self._clock.kind

    async def advance(self, delta: timedelta) -> None:
        """Move virtual time forward, firing every timer due on the way in order, and settle."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        self._clock.check_movable("advance()")
        if not isinstance(delta, timedelta):
            raise TypeError(f"advance() takes a datetime.timedelta, e.g. timedelta(hours=1), not "
                            f"{type(delta).__name__}")
        target = check_due(self._now() + duration_ms(delta, "advance()'s delta"), "advance()")
        seen = len(self._waiter.interrupts)
        with sigint_guard:
            await self._waiter.quiesce(seen=seen)
            while (nxt := self._timers.next_due()) is not None and nxt.due_ms <= target:
                self._clock.set(nxt.due_ms)
                await self._waiter.quiesce(seen=seen)
            self._clock.set(target)
            await self._waiter.quiesce(seen=seen)
        self._commit()  # the clock, too, is durable

    async def settle(self) -> None:
        """Run until nothing can progress at the current time (time itself does not move)."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        with sigint_guard:
            await self._waiter.quiesce()
        self._commit()  # what ran is on disk when settle returns

    # ------------------------------------------------------------------ calls and sends
    # The ingress part's (see ingress.py), forwarded with their signatures and docstrings, which help() and
    # tab completion show.
    async def service_call(self, tpe: Any, arg: Any = None, idempotency_key: str | None = None,
                           headers: dict[str, str] | None = None) -> Any:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        return await self._ingress.typed_call("service", tpe, None, arg, idempotency_key, headers)

    async def object_call(self, tpe: Any, key: str | None = None, arg: Any = None,
                          idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> Any:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        return await self._ingress.typed_call("object", tpe, key, arg, idempotency_key, headers)

    async def workflow_call(self, tpe: Any, key: str | None = None, arg: Any = None,
                            idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> Any:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        return await self._ingress.typed_call("workflow", tpe, key, arg, idempotency_key, headers)

    async def service_send(self, tpe: Any, arg: Any = None, send_delay: timedelta | None = None,
                           idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> SendHandle:
        return await self._ingress.typed_send("service", tpe, None, arg, send_delay, idempotency_key, headers)

    async def object_send(self, tpe: Any, key: str | None = None, arg: Any = None, send_delay: timedelta | None = None,
                          idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> SendHandle:
        return await self._ingress.typed_send("object", tpe, key, arg, send_delay, idempotency_key, headers)

    async def workflow_send(self, tpe: Any, key: str | None = None, arg: Any = None,
                            send_delay: timedelta | None = None, idempotency_key: str | None = None,
                            headers: dict[str, str] | None = None) -> SendHandle:
        return await self._ingress.typed_send("workflow", tpe, key, arg, send_delay, idempotency_key, headers)

    async def generic_call(self, service: str, handler: str, arg: bytes, key: str | None = None,
                           idempotency_key: str | None = None, headers: dict[str, str] | None = None,
                           scope: str | None = None, limit_key: str | None = None) -> bytes:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        return await self._ingress.generic_call(service, handler, arg, key, idempotency_key, headers, scope, limit_key)

    async def generic_send(self, service: str, handler: str, arg: bytes, key: str | None = None,
                           send_delay: timedelta | None = None, idempotency_key: str | None = None,
                           headers: dict[str, str] | None = None, scope: str | None = None,
                           limit_key: str | None = None) -> SendHandle:
        return await self._ingress.generic_send(service, handler, arg, key, send_delay, idempotency_key, headers,
                                                scope, limit_key)

    async def attach(self, target: Any, key: str | None = None, idempotency_key: str | None = None) -> Any:
        """Wait for an invocation's result: by invocation id, by workflow (`attach(run, key="wf-1")`), or by
        idempotency key (`attach(handler, key=..., idempotency_key=...)`). Decoded with its handler's serde."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        return await self._ingress.attach(target, key, idempotency_key)

    def output(self, target: Any, key: str | None = None, idempotency_key: str | None = None) -> Any:
        """The result of a completed invocation (found as for attach); raises pg.NotReady while it runs."""
        return self._ingress.output(target, key, idempotency_key)

    # ------------------------------------------------------------------ operations (as Restate's CLI offers them)
    def cancel(self, invocation_id: str) -> None:
        """Cancel as Restate does: a started invocation gets the cancel signal (the SDK raises TerminalError
        409 "cancelled" at its current await and cancels its pending calls); one not yet started ends at
        once with 409 "canceled"; a finished one is left alone."""
        self._ingress.cancel(invocation_id)

    def kill(self, invocation_id: str) -> None:
        """End an invocation and every call it waits on at once, without running any more handler code.
        Callers get 409 "killed"; one-way sends it made are not touched; locks are released. One that has not
        started (a delayed send, or queued in a key's inbox) is then forgotten, as Restate does: attach and
        output answer 404."""
        self._ingress.kill(invocation_id)

    def pause(self, invocation_id: str) -> None:
        """Stop retrying (or running) an invocation until resume(); it shows as 'paused'."""
        self._ingress.pause(invocation_id)

    def resume(self, invocation_id: str) -> None:
        """Start a paused invocation again from its journal."""
        self._ingress.resume(invocation_id)

    def resolve_awakeable(self, awakeable_id: str, value: Any = None) -> None:
        """Complete an awakeable from a cell, as `POST /restate/awakeables/<id>/resolve` does. `value` is
        encoded as JSON (the SDK's default serde), bytes are sent as they are."""
        self._ingress.resolve_awakeable(awakeable_id, value)

    def reject_awakeable(self, awakeable_id: str, message: str, code: int = 500) -> None:
        """Fail an awakeable from a cell: the awaiting handler gets TerminalError(message, code)."""
        self._ingress.reject_awakeable(awakeable_id, message, code)

    def resolve_promise(self, workflow: str, key: str, name: str, value: Any = None) -> None:
        """Resolve a workflow's durable promise from a cell; a second resolution fails with 409, as in Restate.
        As with a shared handler in Restate, the workflow's run need not have started: it sees the promise
        resolved when it does."""
        self._ingress.resolve_promise(workflow, key, name, value)

    def reject_promise(self, workflow: str, key: str, name: str, message: str, code: int = 500) -> None:
        """Fail a workflow's durable promise from a cell: its awaiter gets TerminalError(message, code)."""
        self._ingress.reject_promise(workflow, key, name, message, code)

    # ------------------------------------------------------------------ reading (for the layers above)
    def invocation(self, invocation_id: str) -> Invocation:
        """The invocation with this id; ValueError for something that is not an id, KeyError for an id this
        runtime does not know (never created, or forgotten after its retention)."""
        inv = self._invocations.get(invocation_id)
        if inv is None:
            try:
                ids.parse(invocation_id)
            except ids.BadInvocationId as exc:
                raise ValueError(f"invocation_id: {exc} (ids look like 'inv_1' + 33 characters of 0-9a-zA-Z; "
                                 f"see rt.invocations())") from None
            raise KeyError(f"no invocation {invocation_id!r} in this runtime (see rt.invocations())")
        return inv

    def all_invocations(self) -> Iterable[Invocation]:
        """Every invocation the engine keeps (completed ones until their retention ends)."""
        return self._invocations.values()

    @property
    def _services(self) -> dict[str, Registered]:  # the name tests reach deployments by (see registry.py)
        return self._registry.services

    def stored_state(self, service: str, key: str) -> dict[str, bytes]:
        """The K/V state of one object or workflow, as stored (raw bytes)."""
        return self._state.get((service, key), {})

    @property
    def store(self) -> str | None:
        """The store's file, or None for the in-memory default."""
        return self._store.path

    def close(self, reason: str = "rt.close() was called") -> None:
        """Stop this runtime: attempts in flight end, its store file is released. Later use raises."""
        self._recovery.close(reason)

    def durable_meta(self) -> dict[str, Any]:
        """The engine's own durable values (clock, id generator, inbox sequence), as a store records them."""
        return self._recovery.durable_meta()

    def deadlocks(self) -> list[Deadlock]:
        """The wait-for cycles standing now; each lists its invocations, targets and edges and draws itself."""
        return self._explainer.deadlocks()

    @staticmethod
    def awakeable_id(inv: Invocation, idx: int) -> str:
        """The id of awakeable number `idx` of `inv`, as the SDK derives it ('sign_1...')."""
        return Explainer.awakeable_id(inv, idx)

    def __repr__(self) -> str:
        counts = status_counts(self._invocations.values())
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no invocations"
        return (f"<playground.Runtime {self._clock.kind} clock at {self.now.isoformat()}; "
                f"services: {', '.join(self._registry.services) or 'none'}; {summary}>")
