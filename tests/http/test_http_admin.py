"""The HTTP door's admin API: what the `restate` CLI calls, in-process through httpx's ASGI transport."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pyarrow as pa
import pytest

import playground as pg
from playground.http import Door

DEPLOYMENT_ID = re.compile(r"dp_1[0-9A-Za-z]{22}")


@pytest.fixture
def door(rt: pg.Runtime) -> Door:
    return Door(rt)


@pytest.fixture
async def admin(door: Door) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the door's admin API, in-process (httpx's ASGI transport, no socket)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=door.admin_app), base_url="http://admin") as c:
        yield c


@pytest.fixture
async def ingress(door: Door) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the door's ingress, in-process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=door.ingress_app), base_url="http://ingress") as c:
        yield c


async def rows(admin: httpx.AsyncClient, sql: str) -> list[dict]:
    resp = await admin.post("/v4/query", json={"query": sql}, headers={"accept": "application/json"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    return resp.json()["rows"]


async def arrow(admin: httpx.AsyncClient, sql: str) -> pa.Table:
    resp = await admin.post("/v4/query", json={"query": sql}, headers={"accept": "*/*"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/vnd.apache.arrow.stream"
    return pa.ipc.open_stream(resp.content).read_all()


# ------------------------------------------------------------------------------------ version, health
async def test_version_says_admin_api_2_to_4_with_features_and_health_is_200(admin) -> None:
    doc = (await admin.get("/version")).json()
    assert (doc["version"], doc["min_admin_api_version"], doc["max_admin_api_version"]) == ("1.7.12", 2, 4)
    assert doc["features"] == {}
    assert (await admin.get("/health")).status_code == 200
    assert (await admin.get("/v4/health")).status_code == 200
    assert (await admin.get("/v3/health")).status_code == 200 and (await admin.get("/v9/health")).status_code == 404
    assert (await admin.get("/nope")).status_code == 404


# ------------------------------------------------------------------------------------ query
async def test_query_answers_json_rows_with_nulls_left_out_and_times_in_utc(admin, ingress) -> None:
    await ingress.post("/Counter/Mary/add", json=5)
    [row] = await rows(admin, "SELECT id, target, status, created_at, completed_at, idempotency_key "
                              "FROM sys_invocation")
    assert row["target"] == "Counter/Mary/add" and row["status"] == "completed"
    assert "idempotency_key" not in row
    assert row["created_at"] == "2026-01-01T00:00:00.000Z"
    [state] = await rows(admin, "select key, value from state where service_name = 'Counter' "
                                "and service_key = 'Mary'")
    assert state == {"key": "total", "value": b"5".hex()}


async def test_query_answers_an_arrow_stream_with_restates_types(admin, ingress) -> None:
    await ingress.post("/Counter/Mary/add", json=5)
    count = await arrow(admin, "SELECT COUNT(1) FROM (SELECT * FROM sys_invocation inv LIMIT 50000) "
                               "WHERE status != 'completed'")
    assert count.schema.field(0).type == pa.int64() and count.column(0).to_pylist() == [0]
    table = await arrow(admin, "SELECT created_at, value, retry_count FROM sys_invocation, state")
    assert table.schema.field("created_at").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("value").type == pa.binary()
    assert table.schema.field("retry_count").type == pa.int64()
    summed = await arrow(admin, "SELECT sum(retry_count) AS n FROM sys_invocation")
    assert summed.schema.field("n").type == pa.int64()


async def test_the_clis_datafusion_queries_run_translated(admin, ingress) -> None:
    await ingress.post("/Counter/Mary/add", json=5)
    await ingress.post("/Waiter/w/wait/send")
    found = await rows(admin, "SELECT target_service_name, target_handler_name, status, COUNT(1) as "
                              "num_invocations, MIN(created_at) as oldest_at, FIRST_VALUE(id ORDER BY "
                              "created_at ASC) as oldest_invocation FROM sys_invocation WHERE "
                              "target_service_name IN ('Counter','Waiter') GROUP BY target_service_name, "
                              "target_handler_name, status ORDER BY target_handler_name")
    assert [(r["target_handler_name"], r["status"], r["num_invocations"]) for r in found] == [
        ("add", "completed", 1), ("wait", "running", 1)]
    checks = await arrow(admin, "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = "
                                "'sys_journal' AND column_name IN ('promise_name')")
    assert checks.column(0).to_pylist() == [1]
    status = await rows(admin, "SELECT id, target FROM sys_invocation_status WHERE status == 'invoked'")
    assert [r["target"] for r in status] == ["Waiter/w/wait"]


@pytest.mark.parametrize("sql", ["SELECT * FROM read_csv('/etc/passwd')", "COPY (SELECT 1) TO '/tmp/x.csv'",
                                 "SET enable_external_access = true", "INSTALL httpfs"])
async def test_query_cannot_touch_files_or_change_its_configuration(sql, admin) -> None:
    resp = await admin.post("/query", json={"query": sql}, headers={"accept": "application/json"})
    assert resp.status_code == 400 and resp.json()["message"]


async def test_bad_sql_is_400_and_a_body_without_query_is_422(admin) -> None:
    bad = await admin.post("/query", json={"query": "SELEC"}, headers={"accept": "application/json"})
    assert bad.status_code == 400 and "SELEC" in bad.json()["message"]
    missing = await admin.post("/query", json={}, headers={"accept": "application/json"})
    assert missing.status_code == 422 and "missing field `query`" in missing.text


# ------------------------------------------------------------------------------------ services, deployments
async def test_services_carry_what_the_cli_reads(admin) -> None:
    listed = (await admin.get("/v4/services")).json()["services"]
    assert [s["name"] for s in listed] == ["Greeter", "Counter", "Waiter", "Flow"]
    counter = (await admin.get("/v4/services/Counter")).json()
    assert (counter["ty"], counter["revision"], counter["public"]) == ("VirtualObject", 1, True)
    assert DEPLOYMENT_ID.fullmatch(counter["deployment_id"])
    add = next(h for h in counter["handlers"] if h["name"] == "add")
    assert (add["ty"], add["input_description"], add["output_description"]) == ("Exclusive", "JSON integer",
                                                                               "JSON integer")
    greeter = (await admin.get("/services/Greeter")).json()
    nothing = next(h for h in greeter["handlers"] if h["name"] == "nothing")
    assert (greeter["ty"], "ty" in nothing, nothing["input_description"]) == ("Service", False, "none")
    missing = await admin.get("/v4/services/Nope")
    assert (missing.status_code, missing.json()["message"]) == (404, "The requested service 'Nope' does not "
                                                                     "exist")


async def test_deployments_are_listed_and_registering_one_says_they_live_in_the_notebook(admin) -> None:
    [dep] = (await admin.get("/v4/deployments")).json()["deployments"]
    assert DEPLOYMENT_ID.fullmatch(dep["id"]) and dep["sdk_version"] == "restate-sdk-python/1.3.0"
    assert [s["name"] for s in dep["services"]] == ["Greeter", "Counter", "Waiter", "Flow"]
    full = (await admin.get(f"/v4/deployments/{dep['id']}")).json()
    assert full["services"][1]["ty"] == "VirtualObject"
    refused = await admin.post("/v4/deployments", json={"uri": "http://localhost:9080"})
    assert refused.status_code == 400 and "rt.register" in refused.json()["message"]
    assert (await admin.get("/v4/deployments/dp_nope")).status_code == 404


# ------------------------------------------------------------------------------------ operations
async def test_cancel_and_kill_over_patch_end_a_blocked_invocation_as_restate_does(rt, admin, ingress) -> None:
    a = (await ingress.post("/Waiter/a/wait/send")).json()["invocationId"]
    b = (await ingress.post("/Waiter/b/wait/send")).json()["invocationId"]
    await rt.settle()
    assert (await admin.patch(f"/v4/invocations/{a}/cancel")).status_code == 202
    assert (await admin.patch(f"/v4/invocations/{b}/kill")).status_code == 200
    assert (await ingress.get(f"/restate/invocation/{a}/attach")).json()["message"] == "cancelled"
    assert (await ingress.get(f"/restate/invocation/{b}/attach")).json()["message"] == "killed"
    again = await admin.patch(f"/v4/invocations/{a}/cancel")
    assert (again.status_code, again.json()["message"]) == (409, f"The invocation '{a}' was already completed.")


async def test_purge_forgets_a_completed_invocation_and_refuses_a_running_one(rt, admin, ingress) -> None:
    done = (await ingress.post("/Greeter/greet", json="x")).headers["x-restate-id"]
    running = (await ingress.post("/Waiter/p/wait/send")).json()["invocationId"]
    await rt.settle()
    assert (await admin.patch(f"/invocations/{running}/purge")).status_code == 409
    assert (await admin.patch(f"/invocations/{done}/purge")).status_code == 200
    assert await rows(admin, f"SELECT id FROM sys_invocation WHERE id = '{done}'") == []


async def test_pause_answers_202_then_200_once_paused_and_resume_puts_it_back_to_running(rt, admin, ingress) -> None:
    inv = (await ingress.post("/Waiter/q/wait/send")).json()["invocationId"]
    await rt.settle()
    assert (await admin.patch(f"/invocations/{inv}/resume")).status_code == 200  # not paused: nothing to do
    assert (await admin.patch(f"/invocations/{inv}/pause")).status_code == 202
    await rt.settle()
    assert rt.invocation(inv).status == "paused"
    assert (await admin.patch(f"/invocations/{inv}/pause")).status_code == 200
    assert (await admin.patch(f"/invocations/{inv}/resume")).status_code == 200
    await rt.settle()
    assert rt.invocation(inv).status == "running"


@pytest.mark.parametrize(("invocation_id", "status", "message"), [
    ("xyz", 400, "The request field 'invocation_id' is invalid. Reason: bad format"),
    ("inv_1abc", 400, "The request field 'invocation_id' is invalid. Reason: bad length"),
    ("inv_1" + "1" * 33, 404, f"The requested invocation 'inv_1{'1' * 33}' does not exist"),
])
async def test_operations_on_bad_or_unknown_ids(invocation_id, status, message, admin) -> None:
    resp = await admin.patch(f"/v4/invocations/{invocation_id}/cancel")
    assert (resp.status_code, resp.json()["message"]) == (status, message)


def restate_state_version(state: dict[str, bytes]) -> str:
    """The version the CLI computes (restate's StateMutationVersion), written out independently."""
    h = hashlib.sha256()
    for i, (k, v) in enumerate(sorted((k.encode(), v) for k, v in state.items())):
        h.update(i.to_bytes(8, "big") + b"\x01" + k + b"\x02" + v + b"\x03")
    return base64.urlsafe_b64encode(h.digest()).decode().rstrip("=")


async def test_state_edit_replaces_the_state_unless_its_version_is_stale(rt, admin, ingress) -> None:
    await ingress.post("/Counter/Mary/add", json=5)
    stale = await admin.post("/v4/services/Counter/state", json={
        "version": "stale", "object_key": "Mary", "new_state": {"total": list(b"9")}})
    assert stale.status_code == 202 and rt.state("Counter", "Mary") == {"total": 5}  # dropped, as on Restate
    version = restate_state_version({"total": b"5"})
    ok = await admin.post("/v4/services/Counter/state", json={
        "version": version, "object_key": "Mary", "new_state": {"total": list(b"41")}})
    assert ok.status_code == 202 and rt.state("Counter", "Mary") == {"total": 41}
    assert (await ingress.post("/Counter/Mary/add", json=1)).json() == 42
    refused = await admin.post("/v4/services/Greeter/state", json={"object_key": "x", "new_state": {}})
    assert (refused.status_code, refused.json()["message"]) == (400, "Cannot modify state for service type "
                                                                     "Service")
    forced = await admin.post("/services/Counter/state", json={"object_key": "Bo", "new_state": {"n": [56]}})
    assert forced.status_code == 202 and rt.state("Counter", "Bo") == {"n": 8}


async def test_arrow_cast_is_translated_to_a_cast(admin) -> None:
    [row] = await rows(admin, "SELECT arrow_cast(1, 'Int64') AS n, arrow_cast('x', 'Utf8') AS s")
    assert row == {"n": 1, "s": "x"}
