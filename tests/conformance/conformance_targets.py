"""One small interface over two engines, so each conformance scenario is written once.

`Target` is what a scenario talks to: call/send by service and handler name with JSON (or raw bytes),
attach/output (by invocation id, idempotency key or workflow id), cancel, kill, awakeables from outside,
state, invocation status, and time: `wait(delta)` lets time pass, `until(check)` waits for something to
become true. Three implementations:

- `EmbeddedTarget`: a fresh `pg.Runtime(*services.ALL)` per test, virtual clock; `wait` advances virtual
  time (so a 300 ms wait costs no wall time) and `until` settles, then advances in small virtual steps.
- `RealTarget`: the session's real Restate server (the package's `restate_server` fixture) with the same
  service objects served by hypercorn in this process and registered once; calls go through the HTTP
  ingress, cancel/kill through the admin API, state and statuses through the admin SQL endpoint
  (`POST /query`, `accept: application/json`); `wait` sleeps for real and `until` polls. The one
  exception is S.CRASHABLE, served by a child process (`CrashableDeployment`) that S34 kills.
- `DoorTarget`: the embedded runtime through its HTTP door (`rt.serve_http()`), with RealTarget's HTTP code
  and the embedded runtime's virtual time, restart and crash: a third engine for every scenario.

Scenarios use `t.delay` (300 ms) for timers and sends, so the real server runs them quickly, and
`t.slack`: 0 on the virtual clock (timers fire exactly on time) and some margin on the real one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import restate

import playground as pg
from playground import real

import conformance_services as S

NOARG = object()
TEST_TIMEOUT_S = 30.0
LATE_APPS: list[real.ServedApp] = []  # deployments RealTarget.register_late added, served for the session


class CallFailed(Exception):
    """A failed invocation as the ingress reports it: Restate's code, message and metadata."""

    def __init__(self, code: int, message: str, metadata: dict[str, str] | None = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.code, self.message, self.metadata = code, message, metadata or {}


async def fails(aw: Awaitable[Any]) -> CallFailed:
    """Await what must fail as the ingress reports a failed invocation; its CallFailed (code, message)."""
    try:
        await aw
    except CallFailed as exc:
        return exc
    raise AssertionError("the call should have failed")


class NotReady(Exception):
    """output() of an invocation that has not completed (the ingress answers 470)."""


@dataclass
class Sent:
    invocation_id: str
    status: str


def fresh(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _encode(arg: Any) -> bytes | None:
    return None if arg is NOARG else json.dumps(arg).encode()


def _decode(body: bytes, raw: bool) -> Any:
    if raw:
        return body
    return json.loads(body) if body else None


# handler functions by (service, handler) name: the embedded runtime's attach/output by idempotency key and
# by workflow id take the decorated function
_HANDLERS: dict[tuple[str, str], Any] = {}
for _svc in S.ALL + S.CRASHABLE:
    for _name, _h in _svc.handlers.items():
        _HANDLERS[(_svc.name, _name)] = _h.fn


LAST_FAILURE_COLUMNS = ("last_failure", "last_failure_error_code", "last_failure_related_command_index",
                        "last_failure_related_command_name", "last_failure_related_command_type")


class Target:
    name: str
    delay = timedelta(milliseconds=300)
    slack = timedelta(0)

    async def call(self, service: str, handler: str, arg: Any = NOARG, *, key: str | None = None,
                   idempotency_key: str | None = None, headers: dict[str, str] | None = None,
                   raw: bytes | None = None) -> Any:
        raise NotImplementedError

    async def send(self, service: str, handler: str, arg: Any = NOARG, *, key: str | None = None,
                   delay: timedelta | None = None, idempotency_key: str | None = None) -> Sent:
        raise NotImplementedError

    async def attach(self, invocation_id: str) -> Any: ...
    async def output(self, invocation_id: str) -> Any: ...
    async def attach_idempotent(self, service: str, handler: str, key: str | None, idempotency_key: str) -> Any: ...
    async def output_idempotent(self, service: str, handler: str, key: str | None, idempotency_key: str) -> Any: ...
    async def attach_workflow(self, service: str, key: str) -> Any: ...
    async def output_workflow(self, service: str, key: str) -> Any: ...
    async def cancel(self, invocation_id: str) -> None: ...
    async def kill(self, invocation_id: str) -> None: ...
    async def resolve_awakeable(self, awakeable_id: str, value: Any) -> None: ...
    async def reject_awakeable(self, awakeable_id: str, reason: str) -> None: ...
    async def state(self, service: str, key: str) -> dict[str, Any]: ...
    async def status(self, invocation_id: str) -> str | None: ...
    async def wait(self, delta: timedelta) -> None: ...
    async def restart(self, hard: bool) -> None: ...  # the engine dies (SIGKILL) or stops, and starts again
    # the deployment serving S.CRASHABLE dies (SIGKILL) or stops (SIGTERM) mid-invocation and comes back
    async def crash_service(self, hard: bool) -> None: ...
    async def attempts(self, invocation_id: str) -> int: ...  # attempts started so far (1 = no retry yet)
    def clock(self) -> float: ...  # seconds on the target's clock (virtual on the embedded runtime)
    # services that were not there at the start: a second deployment on the real server, rt.register here
    async def register_late(self, *services: Any) -> None: ...
    # the last failed attempt as sys_journal_events records it: (error_code, error_message), or None
    async def failure(self, invocation_id: str) -> tuple[int, str] | None: ...
    async def journal_size(self, invocation_id: str) -> int: ...
    # sys_invocation's last_failure columns (LAST_FAILURE_COLUMNS), None where empty; rt.invocations() here
    async def last_failure(self, invocation_id: str) -> dict[str, Any]: ...
    async def ids_of(self, service: str, handler: str, key: str) -> list[str]: ...  # in creation order

    async def until(self, check: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0) -> Any:
        raise NotImplementedError

    async def eventually_equal(self, check: Callable[[], Awaitable[Any]], expected: Any, what: str) -> None:
        last: list[Any] = []

        async def ok() -> bool:
            last[:] = [await check()]
            return last[0] == expected
        try:
            await self.until(ok, what)
        except AssertionError:
            raise AssertionError(f"{what}: expected {expected!r}, last seen {last[0] if last else None!r}") from None

    async def run(self, scenario: Callable[[Target], Awaitable[None]]) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- embedded
class EmbeddedTarget(Target):
    name = "embedded"

    def __init__(self) -> None:
        self.rt: pg.Runtime | None = None

    async def run(self, scenario: Callable[[Target], Awaitable[None]]) -> None:
        self.rt = pg.Runtime(*S.ALL, *S.CRASHABLE)
        try:
            await asyncio.wait_for(scenario(self), TEST_TIMEOUT_S)
        finally:
            self.rt.close()

    @staticmethod
    async def _guard(aw: Awaitable[Any]) -> Any:
        try:
            return await aw
        except pg.StuckError:
            raise
        except restate.TerminalError as exc:
            raise CallFailed(exc.status_code, exc.message, exc.metadata) from None

    async def call(self, service, handler, arg=NOARG, *, key=None, idempotency_key=None, headers=None, raw=None):
        body = raw if raw is not None else (_encode(arg) or b"")
        out = await self._guard(self.rt.generic_call(service, handler, body, key=key,
                                                     idempotency_key=idempotency_key, headers=headers))
        return _decode(out, raw is not None)

    async def send(self, service, handler, arg=NOARG, *, key=None, delay=None, idempotency_key=None):
        h = await self._guard(self.rt.generic_send(service, handler, _encode(arg) or b"", key=key, send_delay=delay,
                                                   idempotency_key=idempotency_key))
        return Sent(h.invocation_id, h.status)

    async def attach(self, invocation_id):
        return await self._guard(self.rt.attach(invocation_id))

    async def output(self, invocation_id):
        return await self._output(lambda: self.rt.output(invocation_id))

    async def _output(self, read: Callable[[], Any]) -> Any:
        await self.rt.settle()
        try:
            return read()
        except pg.NotReady:
            raise NotReady() from None
        except restate.TerminalError as exc:
            raise CallFailed(exc.status_code, exc.message, exc.metadata) from None

    async def attach_idempotent(self, service, handler, key, idempotency_key):
        return await self._guard(self.rt.attach(_HANDLERS[(service, handler)], key=key,
                                                idempotency_key=idempotency_key))

    async def output_idempotent(self, service, handler, key, idempotency_key):
        return await self._output(lambda: self.rt.output(_HANDLERS[(service, handler)], key=key,
                                                         idempotency_key=idempotency_key))

    def _workflow_main(self, service: str) -> Any:
        svc = next(s for s in S.ALL if s.name == service)
        name = next(n for n, h in svc.handlers.items() if h.kind == "workflow")
        return _HANDLERS[(service, name)]

    async def attach_workflow(self, service, key):
        return await self._guard(self.rt.attach(self._workflow_main(service), key=key))

    async def output_workflow(self, service, key):
        return await self._output(lambda: self.rt.output(self._workflow_main(service), key=key))

    async def cancel(self, invocation_id):
        self.rt.cancel(invocation_id)

    async def kill(self, invocation_id):
        self.rt.kill(invocation_id)

    async def resolve_awakeable(self, awakeable_id, value):
        self.rt.resolve_awakeable(awakeable_id, value)

    async def reject_awakeable(self, awakeable_id, reason):
        self.rt.reject_awakeable(awakeable_id, reason)

    async def state(self, service, key):
        await self.rt.settle()
        return self.rt.state(service, key)

    async def status(self, invocation_id):
        await self.rt.settle()
        try:
            return self.rt.invocation(invocation_id).status
        except KeyError:
            return None

    async def wait(self, delta):
        await self.rt.advance(delta)

    async def restart(self, hard):
        await self.rt.faults.restart()  # in memory, a hard and a graceful stop lose the same: nothing stored

    async def crash_service(self, hard):
        await self.rt.settle()
        assert self.rt.faults.drop_deployment() >= 1, "no attempt was in flight to cut off"

    async def attempts(self, invocation_id):
        await self.rt.settle()
        return self.rt.invocation(invocation_id).attempts

    def clock(self):
        return self.rt.now.timestamp()

    async def register_late(self, *services):
        self.rt.register(*services)

    async def failure(self, invocation_id):
        await self.rt.settle()
        err = self.rt.invocation(invocation_id).last_failure
        return (err.code, err.message) if err else None

    async def journal_size(self, invocation_id):
        await self.rt.settle()
        return len(self.rt.invocation(invocation_id).journal)

    async def last_failure(self, invocation_id):
        await self.rt.settle()
        row = self.rt.invocations().set_index("id").loc[invocation_id]
        return {c: None if pd.isna(row[c]) else row[c] for c in LAST_FAILURE_COLUMNS}

    async def ids_of(self, service, handler, key):
        await self.rt.settle()
        df = self.rt.invocations()
        df = df[(df.target_service_name == service) & (df.target_handler_name == handler)
                & (df.target_service_key == key)]
        return list(df.sort_values("created_at", kind="stable").id)

    async def until(self, check, what, timeout=10.0):
        step = timedelta(milliseconds=25)
        for _ in range(int(timeout / step.total_seconds())):
            await self.rt.settle()
            result = await check()
            if result:
                return result
            await self.rt.advance(step)
        raise AssertionError(f"{what}: not true after {timeout} s of virtual time")


# --------------------------------------------------------------------------------------------- real
class RealTarget(Target):
    name = "real"
    slack = timedelta(milliseconds=400)

    def __init__(self, server: real.RestateServer, crashable: CrashableDeployment) -> None:
        self.server = server
        self.crashable = crashable

    async def run(self, scenario: Callable[[Target], Awaitable[None]]) -> None:
        await asyncio.wait_for(scenario(self), TEST_TIMEOUT_S)

    async def _http(self, method: str, url: str, body: bytes | None = None,
                    headers: dict[str, str] | None = None) -> Any:
        try:
            return await asyncio.to_thread(real.http_request, method, url, body, headers or {}, TEST_TIMEOUT_S)
        except real.IngressError as exc:
            if exc.status == 470:
                raise NotReady() from None
            raise CallFailed(exc.code, exc.message, exc.metadata) from None

    async def call(self, service, handler, arg=NOARG, *, key=None, idempotency_key=None, headers=None, raw=None):
        hdrs = dict(headers or {})
        body = raw if raw is not None else _encode(arg)
        if body is not None:
            hdrs["content-type"] = "application/octet-stream" if raw is not None else "application/json"
        if idempotency_key is not None:
            hdrs["idempotency-key"] = idempotency_key
        url = self.server.ingress_url + real.ingress_path(service, handler, key)
        resp = await self._http("POST", url, body, hdrs)
        return _decode(resp.body, raw is not None)

    async def send(self, service, handler, arg=NOARG, *, key=None, delay=None, idempotency_key=None):
        hdrs = {}
        body = _encode(arg)
        if body is not None:
            hdrs["content-type"] = "application/json"
        if idempotency_key is not None:
            hdrs["idempotency-key"] = idempotency_key
        url = self.server.ingress_url + real.ingress_path(service, handler, key) + "/send"
        if delay:
            url += f"?delay={int(delay.total_seconds() * 1000)}ms"
        doc = (await self._http("POST", url, body, hdrs)).json()
        return Sent(doc["invocationId"], doc["status"])

    async def _get(self, path: str) -> Any:
        return (await self._http("GET", self.server.ingress_url + path)).json()

    async def attach(self, invocation_id):
        return await self._get(f"/restate/invocation/{invocation_id}/attach")

    async def output(self, invocation_id):
        return await self._get(f"/restate/invocation/{invocation_id}/output")

    @staticmethod
    def _idem_path(service: str, handler: str, key: str | None, idempotency_key: str) -> str:
        parts = [service] + ([key] if key is not None else []) + [handler, idempotency_key]
        return "/restate/invocation/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)

    async def attach_idempotent(self, service, handler, key, idempotency_key):
        return await self._get(self._idem_path(service, handler, key, idempotency_key) + "/attach")

    async def output_idempotent(self, service, handler, key, idempotency_key):
        return await self._get(self._idem_path(service, handler, key, idempotency_key) + "/output")

    async def attach_workflow(self, service, key):
        return await self._get(f"/restate/workflow/{service}/{key}/attach")

    async def output_workflow(self, service, key):
        return await self._get(f"/restate/workflow/{service}/{key}/output")

    async def _admin(self, invocation_id: str, op: str) -> None:
        try:
            await self._http("PATCH", f"{self.server.admin_url}/invocations/{invocation_id}/{op}")
        except CallFailed as exc:
            if exc.code != 409:  # "already completed": as rt.cancel/kill, leave a finished invocation alone
                raise

    async def cancel(self, invocation_id):
        await self._admin(invocation_id, "cancel")

    async def kill(self, invocation_id):
        await self._admin(invocation_id, "kill")

    async def resolve_awakeable(self, awakeable_id, value):
        await self._http("POST", f"{self.server.ingress_url}/restate/awakeables/{awakeable_id}/resolve",
                         json.dumps(value).encode(), {"content-type": "application/json"})

    async def reject_awakeable(self, awakeable_id, reason):
        await self._http("POST", f"{self.server.ingress_url}/restate/awakeables/{awakeable_id}/reject",
                         reason.encode(), {"content-type": "text/plain"})

    async def query(self, sql: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.server.query, sql)

    async def state(self, service, key):
        rows = await self.query(f"SELECT key, value_utf8 FROM state WHERE service_name = '{service}' "
                                f"AND service_key = '{key}'")
        return {r["key"]: json.loads(r["value_utf8"]) for r in rows}

    async def status(self, invocation_id):
        rows = await self.query(f"SELECT status FROM sys_invocation WHERE id = '{invocation_id}'")
        return rows[0]["status"] if rows else None

    async def wait(self, delta):
        await asyncio.sleep(delta.total_seconds())

    async def restart(self, hard):
        await asyncio.to_thread(self.server.restart, hard)

    async def crash_service(self, hard):
        self.crashable.crash(hard)  # on this (the main) thread: its child then dies with the test process

    async def attempts(self, invocation_id):
        # Restate's retry_count counts the attempts of an invocation in flight ("increments on start")
        rows = await self.query(f"SELECT retry_count FROM sys_invocation WHERE id = '{invocation_id}'")
        return (rows[0].get("retry_count") or 0) if rows else 0

    def clock(self):
        return time.monotonic()

    async def register_late(self, *services):
        app = await asyncio.to_thread(real.serve, *services)
        LATE_APPS.append(app)  # served as long as the server keeps the registration: the whole session
        await asyncio.to_thread(self.server.register, app.url)

    async def failure(self, invocation_id):
        rows = await self.query(f"SELECT event_json FROM sys_journal_events WHERE id = '{invocation_id}' "
                                f"AND event_type = 'TransientError' ORDER BY appended_at DESC LIMIT 1")
        if not rows:
            return None
        doc = json.loads(rows[0]["event_json"])
        return doc["error_code"], doc["error_message"]

    async def journal_size(self, invocation_id):
        rows = await self.query(f"SELECT journal_size FROM sys_invocation WHERE id = '{invocation_id}'")
        return rows[0]["journal_size"]

    async def last_failure(self, invocation_id):
        rows = await self.query(f"SELECT {', '.join(LAST_FAILURE_COLUMNS)} FROM sys_invocation "
                                f"WHERE id = '{invocation_id}'")
        return {c: rows[0].get(c) for c in LAST_FAILURE_COLUMNS}  # JSON rows leave out what is null

    async def ids_of(self, service, handler, key):
        rows = await self.query(f"SELECT id FROM sys_invocation WHERE target_service_name = '{service}' AND "
                                f"target_handler_name = '{handler}' AND target_service_key = '{key}' "
                                f"ORDER BY created_at")
        return [r["id"] for r in rows]

    async def until(self, check, what, timeout=10.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = await check()
            if result:
                return result
            if loop.time() > deadline:
                raise AssertionError(f"{what}: not true after {timeout} s")
            await asyncio.sleep(0.03)


# --------------------------------------------------------------------------------------------- door
class _DoorAddresses:
    """What RealTarget reads of its server, for the playground's HTTP door."""

    def __init__(self, door: Any) -> None:
        self.ingress_url, self.admin_url = door.ingress_url, door.admin_url

    def query(self, sql: str) -> list[dict[str, Any]]:
        return real.query(self.admin_url, sql)


class DoorTarget(RealTarget):
    """The embedded runtime (virtual clock) through its HTTP door (`rt.serve_http()`): RealTarget's HTTP
    ingress, admin API and SQL, with the embedded runtime's time, restart and crash."""

    name = "door"
    slack = timedelta(0)

    def __init__(self) -> None:
        self.rt: pg.Runtime | None = None

    async def run(self, scenario: Callable[[Target], Awaitable[None]]) -> None:
        self.rt = pg.Runtime(*S.ALL, *S.CRASHABLE)
        try:
            async with self.rt.serve_http() as door:
                self.server = _DoorAddresses(door)
                await asyncio.wait_for(scenario(self), TEST_TIMEOUT_S)
        finally:
            self.rt.close()

    async def _http(self, method: str, url: str, body: bytes | None = None,
                    headers: dict[str, str] | None = None) -> Any:
        try:
            return await asyncio.to_thread(real.http_request, method, url, body, headers or {}, TEST_TIMEOUT_S)
        except real.IngressError as exc:
            kind = exc.headers.get("x-playground-error")  # what can never complete is answered at once
            if kind is not None:
                raise (pg.DeadlockError if kind == "deadlock" else pg.StuckError)(exc.message) from None
            if exc.status == 470:
                raise NotReady() from None
            raise CallFailed(exc.code, exc.message, exc.metadata) from None

    async def query(self, sql: str) -> list[dict[str, Any]]:
        await self.rt.settle()
        return await super().query(sql)

    wait = EmbeddedTarget.wait
    until = EmbeddedTarget.until
    register_late = EmbeddedTarget.register_late  # the runtime behind the door registers them
    restart = EmbeddedTarget.restart
    crash_service = EmbeddedTarget.crash_service
    clock = EmbeddedTarget.clock


class CrashableDeployment:
    """S.CRASHABLE served by `python -m playground serve` in a child process, so that a scenario can kill
    it (SIGKILL) or stop it (SIGTERM) mid-invocation, as Restate's own suite kills a service container, and
    serve it again on the same address (the server's retries then find it)."""

    def __init__(self) -> None:
        self.port = real.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        # open for the child's whole life (it writes there); closed in stop()
        self.log = tempfile.NamedTemporaryFile(prefix="crashable-", suffix=".log", delete=False)  # noqa: SIM115

    def start(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "playground", "serve", "conformance_services:CRASHABLE", "--port", str(self.port),
             "--no-register"], cwd=str(Path(__file__).parent), stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, preexec_fn=real.dies_with_us())
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serving {S.CRASHABLE} exited with {self.proc.returncode}: "
                                   f"{Path(self.log.name).read_text()[-2000:]}")
            try:
                real.http_request("GET", self.url + "/health", timeout=1)
                return
            except (OSError, real.IngressError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.url} did not come up within {timeout:.0f} s") from None
                time.sleep(0.05)

    def crash(self, hard: bool) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL if hard else signal.SIGTERM)
        code = self.proc.wait(30)
        assert code == (-signal.SIGKILL if hard else 0), f"the deployment exited with {code}"
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)  # only the child this object started, by pid
            self.proc.wait(30)
        self.log.close()
        os.unlink(self.log.name)


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def conformance_server(restate_server):
    """The session's real server with every conformance service registered once: S.ALL served in this
    process, S.CRASHABLE by a child process a scenario may kill."""
    restate_server.register(*S.ALL)
    crashable = CrashableDeployment()
    crashable.start()
    try:
        restate_server.server.register(crashable.url)
        yield restate_server.server, crashable
    finally:
        crashable.stop()
        for app in LATE_APPS:
            app.stop()
        LATE_APPS.clear()


@pytest.fixture(params=["embedded", "real", "door"])
def target(request) -> Target:
    if request.param == "embedded":
        return EmbeddedTarget()
    if request.param == "door":
        return DoorTarget()
    return RealTarget(*request.getfixturevalue("conformance_server"))


async def known_gap(t: Target, gap: str, body: Callable[[], Awaitable[None]]) -> None:
    """Run `body`; on a target where differences.KNOWN_GAPS lists `gap`, it is expected to fail (xfail), and
    passing fails the test so the entry gets removed once the gap is closed."""
    import differences
    reason = differences.KNOWN_GAPS[gap].get(t.name)
    if reason is None:
        await body()
        return
    try:
        await body()
    except (AssertionError, CallFailed) as exc:
        pytest.xfail(f"known gap {gap}: {reason} ({exc})")
    pytest.fail(f"known gap {gap!r} no longer shows on the {t.name} target: remove it from "
                f"differences.KNOWN_GAPS", pytrace=False)


def scenario(fn: Callable[[Target], Awaitable[None]]) -> Callable[[Target], Awaitable[None]]:
    """Turn `async def test_x(t)` into a pytest test run once per target."""
    @functools.wraps(fn)
    async def test(target: Target) -> None:
        await target.run(fn)
    test.__signature__ = inspect.Signature([inspect.Parameter("target", inspect.Parameter.POSITIONAL_OR_KEYWORD)])
    return test
