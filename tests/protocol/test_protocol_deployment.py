"""AsgiDeployment discovery, manifest parsing, retry policies, and the SIGTERM takeover guard."""

from __future__ import annotations

import asyncio
import signal
import threading
from datetime import timedelta
from typing import Any

import pytest
import restate
from restate import InvocationRetryPolicy

from playground.protocol.deployment import AsgiDeployment, HandlerInfo, RetryPolicy, ServiceInfo, parse_manifest
from playground.protocol.driver import CONTENT_TYPE, Attempt

from protocol_testkit import (
    ensure_ended,
    finish,
    input_frame,
    is_named,
    keep_feed,
    names,
    open_attempt,
    pump_until,
    received,
    start_msg,
)


def _services() -> list[Any]:
    svc = restate.Service(
        "Svc",
        idempotency_retention=timedelta(hours=2),
        invocation_retry_policy=InvocationRetryPolicy(
            initial_interval=timedelta(milliseconds=250), max_attempts=3, on_max_attempts="kill"),
    )

    @svc.handler()
    async def plain(ctx: restate.Context, name: str) -> str:
        return f"hello {name}"

    @svc.handler(
        invocation_retry_policy=InvocationRetryPolicy(exponentiation_factor=3.0, max_interval=timedelta(seconds=10)),
        idempotency_retention=timedelta(minutes=1),
    )
    async def tuned(ctx: restate.Context) -> None:
        return None

    obj = restate.VirtualObject("Obj")

    @obj.handler()
    async def exclusive(ctx: restate.ObjectContext) -> None:
        return None

    @obj.handler(kind="shared", enable_lazy_state=True)
    async def shared(ctx: restate.ObjectSharedContext) -> None:
        return None

    wf = restate.Workflow("Wf")

    @wf.main(workflow_retention=timedelta(days=1))
    async def run(ctx: restate.WorkflowContext) -> None:
        return None

    @wf.handler()
    async def signal_it(ctx: restate.WorkflowSharedContext) -> None:
        return None

    return [svc, obj, wf]


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return AsgiDeployment(restate.app(_services())).discover()


@pytest.fixture(scope="module")
def infos(manifest: dict[str, Any]) -> dict[str, ServiceInfo]:
    return parse_manifest(manifest)


# --- discovery ----------------------------------------------------------------------------------------------


def test_discover_without_a_running_loop_returns_the_manifest(manifest: dict[str, Any]) -> None:
    assert manifest["protocolMode"] == "BIDI_STREAM"
    assert (manifest["minProtocolVersion"], manifest["maxProtocolVersion"]) == (5, 7)
    assert [s["name"] for s in manifest["services"]] == ["Svc", "Obj", "Wf"]


async def test_discover_works_from_inside_a_running_loop() -> None:
    deployment = AsgiDeployment(restate.app(_services()))

    loop = asyncio.get_running_loop()
    result = deployment.discover()
    running = loop.is_running()
    assert running
    assert {s["name"]: s["ty"] for s in result["services"]} == {
        "Svc": "SERVICE", "Obj": "VIRTUAL_OBJECT", "Wf": "WORKFLOW"}


def test_discover_runs_the_app_off_the_calling_thread() -> None:
    threads: list[str] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        threads.append(threading.current_thread().name)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"services": []}', "more_body": False})

    assert AsgiDeployment(app).discover() == {"services": []}
    assert threads == ["playground-discovery"]
    assert threading.current_thread().name not in threads


def test_discover_reports_non_200_answers() -> None:
    # Identity keys make every unsigned request, discovery included, answer 401.
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n, key = int.from_bytes(bytes(range(1, 33)), "big"), ""
    while n:
        n, r = divmod(n, 58)
        key = alphabet[r] + key
    svc = restate.Service("Locked")

    @svc.handler()
    async def h(ctx: restate.Context) -> None:
        return None

    app = restate.app([svc], identity_keys=[f"publickeyv1_{key}"])
    with pytest.raises(RuntimeError, match="HTTP 401"):
        AsgiDeployment(app).discover()


def test_discover_reraises_app_exceptions_in_the_caller() -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        raise LookupError("no manifest here")

    with pytest.raises(LookupError, match="no manifest here"):
        AsgiDeployment(app).discover()


async def test_open_returns_an_attempt_for_the_handler_path() -> None:
    deployment = AsgiDeployment(restate.app(_services()))
    deployment.discover()

    attempt = keep_feed(deployment.open("Svc", "plain", [("x-restate-invocation-id", "inv_1")]))
    try:
        attempt.start(start_msg(), [input_frame(b'"ada"')])
        items = await pump_until(attempt, is_named("End")) + await finish(attempt)
    finally:
        await ensure_ended(attempt)
    assert isinstance(attempt, Attempt)
    assert attempt._scope["path"] == "/invoke/Svc/plain"
    assert (b"x-restate-invocation-id", b"inv_1") in attempt._scope["headers"]
    assert (b"content-type", CONTENT_TYPE.encode()) in attempt._scope["headers"]
    assert names(items) == ["Output", "End", "AttemptEnded"]
    assert received(items, "Output")[0].value.content == b'"hello ada"'


def test_discover_supports_selective_state_preload() -> None:
    obj = restate.VirtualObject("Preloaded")

    @obj.handler(state_preload=["profile"])
    async def read(ctx: restate.ObjectContext) -> None:
        return None

    manifest = AsgiDeployment(restate.app([obj])).discover()
    assert parse_manifest(manifest)["Preloaded"].handlers["read"].lazy_state is True


# --- SIGTERM takeover ---------------------------------------------------------------------------------------


def _signal_probe_app() -> Any:
    svc = restate.Service("Probe")

    @svc.handler()
    async def ping(ctx: restate.Context) -> str:
        return "pong"

    return restate.app([svc])


async def _one_attempt_then_sigterm_installed(app: Any) -> tuple[list[str], bool]:
    attempt = open_attempt(app, "Probe", "ping")
    try:
        attempt.start(start_msg(), [input_frame()])
        items = await pump_until(attempt, is_named("End")) + await finish(attempt)
    finally:
        await ensure_ended(attempt)
    loop = asyncio.get_running_loop()
    return names(items), signal.SIGTERM in loop._signal_handlers  # type: ignore[attr-defined]


@pytest.fixture
def sigterm_registrations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the threads on which a SIGTERM handler was successfully added to some event loop."""
    registrations: list[str] = []
    original = asyncio.SelectorEventLoop.add_signal_handler

    def recording(self: asyncio.AbstractEventLoop, sig: int, callback: Any, *args: Any) -> None:
        original(self, sig, callback, *args)  # raises off the main thread; then nothing is recorded
        if sig == signal.SIGTERM:
            registrations.append(threading.current_thread().name)

    monkeypatch.setattr(asyncio.SelectorEventLoop, "add_signal_handler", recording)
    return registrations


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_discovery_first_keeps_the_sdk_from_taking_over_sigterm(sigterm_registrations: list[str]) -> None:
    app = _signal_probe_app()
    AsgiDeployment(app).discover()
    seen, installed = asyncio.run(_one_attempt_then_sigterm_installed(app))
    assert seen == ["Output", "End", "AttemptEnded"]
    assert installed is False
    assert sigterm_registrations == []  # not on the discovery loop either


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_without_discovery_first_the_sdk_takes_over_sigterm_on_the_main_loop(
    sigterm_registrations: list[str],
) -> None:
    """Control for the test above: it shows the check can fail (pitfall P9)."""
    previous = signal.getsignal(signal.SIGTERM)
    app = _signal_probe_app()
    try:
        seen, installed = asyncio.run(_one_attempt_then_sigterm_installed(app))
    finally:
        signal.signal(signal.SIGTERM, previous)  # closing the loop resets SIGTERM to SIG_DFL; put back what was
    assert seen == ["Output", "End", "AttemptEnded"]
    assert installed is True
    assert sigterm_registrations == ["MainThread"]


# --- manifest parsing ---------------------------------------------------------------------------------------


def test_service_types_and_keyed_flags(infos: dict[str, ServiceInfo]) -> None:
    assert {name: (info.ty, info.keyed, info.kind) for name, info in infos.items()} == {
        "Svc": ("SERVICE", False, "service"),
        "Obj": ("VIRTUAL_OBJECT", True, "virtual_object"),
        "Wf": ("WORKFLOW", True, "workflow"),
    }


def test_handler_types_and_locking(infos: dict[str, ServiceInfo]) -> None:
    got = {(s, h): (info.ty, info.takes_lock) for s, svc in infos.items() for h, info in svc.handlers.items()}
    assert got == {
        ("Svc", "plain"): (None, False),
        ("Svc", "tuned"): (None, False),
        ("Obj", "exclusive"): ("EXCLUSIVE", True),
        ("Obj", "shared"): ("SHARED", False),
        ("Wf", "run"): ("WORKFLOW", True),
        ("Wf", "signal_it"): ("SHARED", False),
    }


def test_service_retry_policy_applies_to_its_handlers(infos: dict[str, ServiceInfo]) -> None:
    assert infos["Svc"].handlers["plain"].retry == RetryPolicy(
        initial_interval_ms=250, factor=2.0, max_interval_ms=60_000, max_attempts=3, on_max_attempts="kill")


def test_handler_retry_policy_overrides_only_the_fields_it_sets(infos: dict[str, ServiceInfo]) -> None:
    assert infos["Svc"].handlers["tuned"].retry == RetryPolicy(
        initial_interval_ms=250, factor=3.0, max_interval_ms=10_000, max_attempts=3, on_max_attempts="kill")


def test_unset_retry_policy_uses_restate_defaults(infos: dict[str, ServiceInfo]) -> None:
    expected = RetryPolicy(initial_interval_ms=500, factor=2.0, max_interval_ms=60_000, max_attempts=70,
                           on_max_attempts="pause")
    assert RetryPolicy() == expected
    for service in ("Obj", "Wf"):
        for handler in infos[service].handlers.values():
            assert handler.retry == expected


def test_retentions_are_in_milliseconds(infos: dict[str, ServiceInfo]) -> None:
    assert infos["Svc"].handlers["plain"].idempotency_retention_ms == 2 * 3600 * 1000  # from the service
    assert infos["Svc"].handlers["tuned"].idempotency_retention_ms == 60_000  # the handler wins
    assert infos["Wf"].handlers["run"].workflow_retention_ms == 24 * 3600 * 1000
    assert infos["Wf"].handlers["signal_it"].workflow_retention_ms is None
    assert infos["Obj"].handlers["exclusive"].idempotency_retention_ms is None


def test_lazy_state_flag(infos: dict[str, ServiceInfo]) -> None:
    assert infos["Obj"].handlers["shared"].lazy_state is True
    assert infos["Obj"].handlers["exclusive"].lazy_state is False


def test_parse_manifest_applies_service_level_flags_and_handler_overrides() -> None:
    manifest = {
        "services": [{
            "name": "S", "ty": "VIRTUAL_OBJECT", "enableLazyState": True, "ingressPrivate": True,
            "retryPolicyMaxAttempts": 5, "retryPolicyOnMaxAttempts": "PAUSE",
            "handlers": [
                {"name": "a", "ty": "EXCLUSIVE"},
                {"name": "b", "ty": "SHARED", "enableLazyState": False, "ingressPrivate": False,
                 "retryPolicyOnMaxAttempts": "KILL", "retryPolicyInitialInterval": 10},
            ],
        }],
    }
    service = parse_manifest(manifest)["S"]
    a, b = service.handlers["a"], service.handlers["b"]
    assert (a.lazy_state, a.ingress_private) == (True, True)
    assert (b.lazy_state, b.ingress_private) == (False, False)
    assert (a.retry.max_attempts, a.retry.on_max_attempts, a.retry.initial_interval_ms) == (5, "pause", 500)
    assert (b.retry.max_attempts, b.retry.on_max_attempts, b.retry.initial_interval_ms) == (5, "kill", 10)


def test_parse_manifest_of_an_empty_manifest_is_empty() -> None:
    assert parse_manifest({}) == {}
    assert parse_manifest({"services": []}) == {}


def test_handler_info_takes_lock_only_for_exclusive_and_workflow() -> None:
    def info(ty: str | None) -> HandlerInfo:
        return HandlerInfo(name="h", ty=ty, retry=RetryPolicy(), idempotency_retention_ms=None,
                           workflow_retention_ms=None, journal_retention_ms=None, ingress_private=False,
                           lazy_state=False)

    assert [info(t).takes_lock for t in ("EXCLUSIVE", "WORKFLOW", "SHARED", None)] == [True, True, False, False]


# --- retry policy arithmetic --------------------------------------------------------------------------------


def test_default_delay_doubles_from_500ms_and_caps_at_60s() -> None:
    policy = RetryPolicy()
    delays = [policy.delay_ms(n) for n in range(1, 11)]
    assert delays == [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]


def test_delay_grows_by_the_configured_factor_and_caps_at_max_interval() -> None:
    policy = RetryPolicy(initial_interval_ms=100, factor=3.0, max_interval_ms=5_000)
    assert [policy.delay_ms(n) for n in range(1, 6)] == [100, 300, 900, 2700, 5000]
    assert policy.delay_ms(50) == 5000


def test_fractional_factor_delays_are_whole_milliseconds() -> None:
    policy = RetryPolicy(initial_interval_ms=1000, factor=1.5, max_interval_ms=10_000)
    delays = [policy.delay_ms(n) for n in range(1, 5)]
    assert delays == [1000, 1500, 2250, 3375]
    assert all(isinstance(d, int) for d in delays)


def test_delay_stays_capped_for_very_high_retry_counts() -> None:
    assert RetryPolicy().delay_ms(2000) == 60_000
    assert RetryPolicy(factor=10.0, max_attempts=None).delay_ms(400) == 60_000
