"""The public pg.Runtime: the engine (playground.runtime) with the views on it, the layer above everything
else. Tables and SQL come from playground.introspect, pictures from playground.render, the dashboard from
playground.widgets, Restate's HTTP API from playground.http; the engine imports none of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import notebook
from .runtime.core import Engine


class Runtime(Engine):
    """An embedded Restate server for notebooks and tests. See the README for a tour."""

    def __init__(self, *services: Any, clock: str = "virtual", start: datetime | None = None, seed: int = 0,
                 mode: str = "normal", store: Any = None) -> None:
        notebook.install_error_display()
        super().__init__(*services, clock=clock, start=start, seed=seed, mode=mode, store=store)

    def invocations(self) -> Any:
        from . import introspect
        return introspect.invocations(self)

    def journal(self, invocation_id: str) -> Any:
        from . import introspect
        return introspect.journal(self, self.invocation(invocation_id))

    def state(self, service: str, key: str) -> dict[str, Any]:
        """The K/V state of one object or workflow, JSON values decoded (raw bytes where not JSON)."""
        from . import introspect
        return introspect.decode_state(self.stored_state(service, key))

    def inbox(self) -> Any:
        """Invocations queued for a key's lock, in order (Restate's sys_inbox)."""
        from . import introspect
        return introspect.inbox(self)

    def sql(self, query: str) -> Any:
        """Run SQL over Restate-shaped tables (sys_invocation, sys_journal, state, sys_inbox, sys_idempotency,
        sys_promise, sys_keyed_service_status, sys_service, sys_journal_events), as `restate sql` does."""
        from . import introspect
        return introspect.sql(self, query)

    def serve_http(self, host: str = "127.0.0.1", ingress_port: int = 0, admin_port: int = 0,
                   max_body: int = 10 * 1024 * 1024) -> Any:
        """Restate's HTTP ingress and admin API for this runtime, on the running loop, for curl, Restate's
        clients and the `restate` CLI: `door = await rt.serve_http()` (or `async with rt.serve_http() as
        door:`), then `door.ingress_url`, `door.admin_url`, `await door.close()`. Ports 0: free ones."""
        from .http import Door, DoorStarter
        return DoorStarter(Door(self, host, ingress_port, admin_port, max_body))

    def _repr_html_(self) -> str:
        from . import render
        return render.runtime_html(self)

    def dashboard(self) -> Any:
        """Every view in one live widget: clock, invocations and journals, call graph, timeline, deadlocks."""
        from .widgets import Dashboard
        return Dashboard(self)
