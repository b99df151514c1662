"""The HTTP door's ingress: Restate 1.7's paths, codes, messages and headers over the embedded runtime.

Most requests go in-process through httpx's ASGI transport; the socket tests at the end go over TCP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

import playground as pg
from playground.http import Door

import http_services as S


@pytest.fixture
def door_args() -> dict:
    """Options for the door; a test sets its own with @pytest.mark.parametrize("door_args", [...])."""
    return {}


@pytest.fixture
async def ingress(rt: pg.Runtime, door_args: dict) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the door's ingress, in-process (httpx's ASGI transport, no socket)."""
    transport = httpx.ASGITransport(app=Door(rt, **door_args).ingress_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as client:
        yield client


def error(resp: httpx.Response) -> tuple[int, int, str, str]:
    doc = resp.json()
    return resp.status_code, doc["code"], doc["message"], resp.headers["x-restate-error-source"]


# ------------------------------------------------------------------------------------ calls
async def test_a_call_answers_the_result_with_its_invocation_id(rt, ingress) -> None:
    resp = await ingress.post("/Greeter/greet", json="Ann")
    assert resp.status_code == 200 and resp.json() == "hi Ann"
    assert resp.headers["content-type"] == "application/json"
    inv_id = resp.headers["x-restate-id"]
    assert rt.invocation(inv_id).status == "completed"
    assert rt.invocations().set_index("id").loc[inv_id, "target"] == "Greeter/greet"


async def test_an_object_call_uses_the_key_in_the_path_and_get_works_too(rt, ingress) -> None:
    assert (await ingress.post("/Counter/Mary/add", json=2)).json() == 2
    got = await ingress.request("GET", "/Counter/Mary/add", content=b"3", headers={"content-type": "application/json"})
    assert (got.status_code, got.json()) == (200, 5)  # Restate takes GET as well as POST
    assert rt.state("Counter", "Mary") == {"total": 5}


async def test_a_handler_returning_none_answers_200_with_an_empty_body_and_no_content_type(ingress) -> None:
    resp = await ingress.post("/Greeter/nothing")
    assert resp.status_code == 200 and resp.content == b""
    assert "content-type" not in resp.headers


async def test_a_call_to_a_sleeping_handler_answers_at_once_on_the_virtual_clock(rt, ingress) -> None:
    resp = await ingress.post("/Greeter/nap", json="Bo")
    assert resp.json() == "rested Bo"
    assert rt.now.isoformat() == "2026-01-01T01:00:00+00:00"


async def test_a_terminal_error_becomes_the_status_with_restates_body(ingress) -> None:
    resp = await ingress.post("/Greeter/fail", json=422)
    assert error(resp) == (422, 422, "nope", "invocation")
    assert resp.json()["metadata"] == {"why": "test"}
    assert resp.headers["x-restate-id"].startswith("inv_")


async def test_request_headers_reach_the_handler_without_host_and_idempotency_key(ingress) -> None:
    resp = await ingress.post("/Greeter/headers", headers={"x-custom": "yes", "idempotency-key": "h1"})
    seen = resp.json()
    assert seen["x-custom"] == "yes" and seen["x-restate-ingress-path"] == "/Greeter/headers"
    assert "host" not in seen and "idempotency-key" not in seen


# ------------------------------------------------------------------------------------ ingress errors
BAD_REQUESTS = [
    ("POST", "/Nope/x", b"1", {}, (404, "service 'Nope' not found, make sure to register the service before "
                                        "calling it.")),
    ("POST", "/Greeter/nope", b"1", {}, (404, "the service 'Greeter' exists, but the handler 'nope' was not found, "
                                              "check that the handler exists in the latest registered service "
                                              "version.")),
    ("POST", "/Counter/add", b"1", {}, (400, "bad path, expected either /:service-name/:handler or "
                                             "/:object-name/:object-key/:handler")),
    ("POST", "/Greeter/k/greet", b"1", {}, (400, "bad path, expected either /:service-name/:handler or "
                                                 "/:object-name/:object-key/:handler")),
    ("POST", "/Greeter", b"1", {}, (400, "bad path: /Greeter")),
    ("PUT", "/Greeter/greet", b"1", {}, (405, "method not allowed")),
    ("GET", "/restate/nope", b"", {}, (404, "not found")),
    ("POST", "/Greeter/greet", b'"a"', {"content-type": "text/plain"},
     (400, "input validation error: Content-type 'text/plain' does not match 'application/json'")),
    ("POST", "/Greeter/greet", b'"a"', {}, (400, "input validation error: Empty content-type")),
    ("POST", "/Greeter/greet", b'"a"', {"content-type": ""},
     (400, "input validation error: Content-type '' does not match 'application/json'")),
    ("POST", "/Greeter/nothing", b'"a"', {"content-type": "application/json"},
     (400, "input validation error: Expected body and content-type to be empty, but wasn't with content-type "
           "'Some(\"application/json\")'")),
    ("POST", "/Flow/w1/run", b'"a"', {"idempotency-key": "k"},  # before the missing content type
     (400, "cannot use the idempotency key with workflow handlers. The handler invocation will already be "
           "idempotent by the workflow key itself.")),
    ("POST", "/Greeter/greet/send?delay=1000", b'"a"', {"content-type": "application/json"},
     (400, 'bad delay query parameter, must be a ISO8601 duration: failed to parse input in the "friendly" '
           "duration format: expected to find unit designator suffix (e.g., `years` or `secs`) after parsing "
           "integer")),
    ("GET", "/restate/invocation/xyz/output", b"", {}, (400, "bad invocation id 'xyz': bad format")),
    ("POST", "/restate/awakeables/xyz/resolve", b"1", {}, (400, "bad awakeable id 'xyz': bad format")),
]  # each checked against restate-server 1.7.12 (test_http_cli.py runs them on both)


@pytest.mark.parametrize(("method", "path", "body", "headers", "expected"), BAD_REQUESTS)
async def test_bad_requests_get_restates_status_and_message_and_create_nothing(method, path, body, headers,
                                                                                expected, rt, ingress) -> None:
    resp = await ingress.request(method, path, content=body, headers=headers)
    assert error(resp) == (expected[0], expected[0], expected[1], "ingress")
    assert len(rt.invocations()) == 0


@pytest.mark.parametrize("door_args", [{"max_body": 1000}])
async def test_a_body_over_the_cap_gets_413_and_creates_nothing(rt, ingress) -> None:
    resp = await ingress.post("/Greeter/greet", content=b'"' + b"x" * 2000 + b'"',
                              headers={"content-type": "application/json"})
    status, code, message, source = error(resp)
    assert (status, code, source) == (413, 413, "ingress")
    assert "at most 1000 bytes" in message and "max_body" in message
    assert len(rt.invocations()) == 0


# ------------------------------------------------------------------------------------ sends
async def test_a_send_answers_202_accepted_with_the_id(rt, ingress) -> None:
    resp = await ingress.post("/Counter/Ann/add/send", json=1)
    assert resp.status_code == 202
    doc = resp.json()
    assert list(doc) == ["invocationId", "status"] and doc["status"] == "Accepted"
    assert resp.headers["x-restate-id"] == doc["invocationId"]
    await rt.settle()
    assert rt.state("Counter", "Ann") == {"total": 1}


@pytest.mark.parametrize(("delay", "ms"), [("1s", 1000), ("1000ms", 1000), ("PT1S", 1000), ("1h30m", 5_400_000),
                                            ("1m 30s", 90_000), ("P1DT1H", 90_000_000), ("2 hours", 7_200_000)])
async def test_a_delayed_send_is_scheduled_with_its_execution_time(delay, ms, rt, ingress) -> None:
    resp = await ingress.post("/Counter/Ann/add/send", json=1, params={"delay": delay})
    doc = resp.json()
    assert resp.status_code == 202 and doc["status"] == "Accepted"
    start = rt.now
    expected = (start + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "000000Z"
    assert doc["executionTime"] == expected
    assert rt.invocation(doc["invocationId"]).status == "scheduled"
    await rt.advance(timedelta(milliseconds=ms))
    assert rt.state("Counter", "Ann") == {"total": 1}


async def test_the_same_idempotency_key_is_previously_accepted_with_the_same_id(ingress) -> None:
    first = (await ingress.post("/Counter/Ann/add/send", json=1, headers={"idempotency-key": "k1"})).json()
    again = (await ingress.post("/Counter/Ann/add/send", json=5, headers={"idempotency-key": "k1"})).json()
    assert again == {"invocationId": first["invocationId"], "status": "PreviouslyAccepted"}
    called = await ingress.post("/Counter/Ann/add", json=7, headers={"idempotency-key": "k1"})
    assert called.json() == 1 and called.headers["x-restate-id"] == first["invocationId"]


async def test_a_workflow_run_twice_is_409_with_the_first_runs_id_and_a_send_is_previously_accepted(ingress) -> None:
    first = await ingress.post("/Flow/w1/run", json="a")
    assert first.json() == "ran a"
    second = await ingress.post("/Flow/w1/run", json="b")
    assert error(second) == (409, 409, "the workflow method was already invoked", "invocation")
    assert second.headers["x-restate-id"] == first.headers["x-restate-id"]
    sent = (await ingress.post("/Flow/w1/run/send", json="c")).json()
    assert sent == {"invocationId": first.headers["x-restate-id"], "status": "PreviouslyAccepted"}


# ------------------------------------------------------------------------------------ attach and output
async def test_attach_and_output_by_id_by_idempotency_key_and_by_workflow(ingress) -> None:
    sent = (await ingress.post("/Greeter/nap/send", json="Cy", headers={"idempotency-key": "i1"})).json()
    inv_id = sent["invocationId"]
    not_ready = await ingress.get(f"/restate/invocation/{inv_id}/output")
    assert error(not_ready) == (470, 470, "the invocation exists but has not completed yet", "ingress")
    attached = await ingress.get(f"/restate/invocation/{inv_id}/attach")  # waits; the hour is virtual
    assert attached.json() == "rested Cy" and attached.headers["x-restate-id"] == inv_id
    for path in (f"/restate/invocation/{inv_id}/output", f"/restate/output/{inv_id}",
                 f"/restate/attach/{inv_id}", "/restate/invocation/Greeter/nap/i1/output",
                 "/restate/invocation/Greeter/nap/i1/attach"):
        resp = await ingress.get(path)
        assert (resp.status_code, resp.json(), resp.headers["x-restate-id"]) == (200, "rested Cy", inv_id), path
    await ingress.post("/Flow/w2/run/send", json="z")
    assert (await ingress.get("/restate/workflow/Flow/w2/attach")).json() == "ran z"
    assert (await ingress.get("/restate/workflow/Flow/w2/output")).json() == "ran z"
    assert (await ingress.get("/restate/invocation/Counter/Ann/add/none/output")).status_code == 404


async def test_attach_and_output_of_what_does_not_exist_answer_restates_404s(ingress) -> None:
    assert error(await ingress.get("/restate/workflow/Flow/never/output")) == (404, 404, "invocation not found",
                                                                               "ingress")
    attach = await ingress.get("/restate/workflow/Flow/never/attach")
    assert error(attach) == (404, 404, "not found", "invocation")
    assert attach.headers["x-restate-id"].startswith("inv_")
    assert error(await ingress.get("/restate/invocation/Greeter/greet/nokey/output"))[2] == "invocation not found"
    unknown = "inv_1" + "1" * 33
    assert error(await ingress.get(f"/restate/invocation/{unknown}/output"))[2] == "invocation not found"
    assert error(await ingress.get(f"/restate/invocation/{unknown}/attach"))[:3] == (404, 404, "not found")
    assert error(await ingress.get("/restate/invocation/inv_1abc/output")) == (
        400, 400, "bad invocation id 'inv_1abc': bad length", "ingress")


# ------------------------------------------------------------------------------------ awakeables, health
async def test_an_awakeable_resolved_and_rejected_over_http(rt, ingress) -> None:
    a = (await ingress.post("/Waiter/a/wait/send")).json()["invocationId"]
    b = (await ingress.post("/Waiter/b/wait/send")).json()["invocationId"]
    await rt.settle()
    resolved = await ingress.post(f"/restate/awakeables/{rt.state('Waiter', 'a')['id']}/resolve", json="yes")
    rejected = await ingress.post(f"/restate/a/{rt.state('Waiter', 'b')['id']}/reject", content=b"no way")
    assert (resolved.status_code, rejected.status_code) == (202, 202)
    assert (await ingress.get(f"/restate/invocation/{a}/attach")).json() == "yes"
    assert error(await ingress.get(f"/restate/invocation/{b}/attach"))[:3] == (500, 500, "no way")


async def test_health_lists_the_services(ingress) -> None:
    resp = await ingress.get("/restate/health")
    assert resp.status_code == 200 and resp.json() == {"services": ["Greeter", "Counter", "Waiter", "Flow"]}


# ------------------------------------------------------------------------------------ never hangs
async def test_a_deadlocked_call_answers_508_with_the_cycle_instead_of_hanging(rt, ingress) -> None:
    resp = await ingress.post("/Counter/K/hop", json=0)
    status, code, message, source = error(resp)
    assert (status, code, source, resp.headers["x-playground-error"]) == (508, 508, "ingress", "deadlock")
    assert "deadlock" in message and "Counter/K/hop" in message
    root = resp.headers["x-restate-id"]
    rt.cancel(root)
    assert error(await ingress.get(f"/restate/invocation/{root}/attach"))[:3] == (409, 409, "cancelled")


async def test_an_await_nothing_can_complete_answers_504_with_what_it_waits_for(ingress) -> None:
    resp = await ingress.post("/Waiter/z/wait")
    status, _code, message, _ = error(resp)
    assert (status, resp.headers["x-playground-error"]) == (504, "stuck")
    assert "awakeable" in message


async def test_a_timer_on_a_manual_clock_answers_504_saying_to_advance() -> None:
    rt = pg.Runtime(*S.ALL, clock="manual")
    door = Door(rt)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=door.ingress_app), base_url="http://i") as c:
        resp = await c.post("/Greeter/nap", json="x")
    assert resp.status_code == 504 and "advance" in resp.json()["message"]


# ------------------------------------------------------------------------------------ over TCP
async def test_serve_http_listens_on_free_local_ports_and_close_ends_its_tasks() -> None:
    rt = pg.Runtime(*S.ALL)
    before = asyncio.all_tasks()
    door = await rt.serve_http()
    assert door.ingress_url.startswith("http://127.0.0.1:") and door.admin_url.startswith("http://127.0.0.1:")
    assert door.ingress_port != door.admin_port
    async with httpx.AsyncClient() as c:
        assert (await c.post(door.ingress_url + "/Greeter/greet", json="tcp")).json() == "hi tcp"
    await door.close()
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as c:
            await c.get(door.ingress_url + "/restate/health")


async def test_closing_the_door_answers_a_waiting_request_with_503() -> None:
    rt = pg.Runtime(*S.ALL, clock="real")
    async with rt.serve_http() as door, httpx.AsyncClient() as c:
        pending = asyncio.ensure_future(c.post(door.ingress_url + "/Greeter/nap", json="x"))
        await asyncio.sleep(0.3)
        await door.close()
        resp = await asyncio.wait_for(pending, 5)
    assert resp.status_code == 503 and "closing" in resp.json()["message"]


def test_serve_http_validates_its_arguments_before_listening() -> None:
    rt = pg.Runtime(*S.ALL)
    with pytest.raises(ValueError, match="ingress_port"):
        rt.serve_http(ingress_port=-1)
    with pytest.raises(ValueError, match="max_body"):
        rt.serve_http(max_body=0)
    with pytest.raises(TypeError, match="host"):
        rt.serve_http(host=None)


async def test_door_sh_runs_curl_against_the_door_from_the_loop_it_serves_on() -> None:
    import shutil
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")

    rt = pg.Runtime(*S.ALL)
    async with rt.serve_http() as door:
        result = await door.sh("curl -s $INGRESS_URL/Greeter/greet -H 'content-type: application/json' "
                               "-d '\"curl\"'")
    assert result.ok and result.stdout == '"hi curl"' and repr(result) == '"hi curl"'
