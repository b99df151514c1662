"""restate-sdk's own client (`restate.create_client`) against the playground's HTTP door."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import restate
from restate.client import Client
from restate.client_types import HttpError

import playground as pg

import http_services as S


@pytest.fixture
async def client(rt: pg.Runtime) -> AsyncIterator[Client]:
    """restate-sdk's client on the ingress of the runtime's door, served on a free local port."""
    async with rt.serve_http() as door, restate.create_client(door.ingress_url) as sdk_client:
        yield sdk_client


async def test_the_sdk_client_calls_a_service_an_object_and_a_workflow(client) -> None:
    assert await client.service_call(S.greet, arg="c") == "hi c"
    assert await client.object_call(S.add, key="z", arg=2) == 2
    assert await client.workflow_call(S.run, key="w", arg="x") == "ran x"
    assert await client.service_call(S.nap, arg="n") == "rested n"  # an hour, virtual


async def test_the_sdk_client_sends_and_an_idempotency_key_gives_the_same_id(rt, client) -> None:
    first = await client.object_send(S.add, key="z", arg=1, idempotency_key="i")
    again = await client.object_send(S.add, key="z", arg=1, idempotency_key="i")
    assert first.invocation_id == again.invocation_id
    await rt.settle()
    assert rt.state("Counter", "z") == {"total": 1}
    assert rt.invocation(first.invocation_id).idempotency_key == "i"


async def test_the_sdk_clients_send_delay_has_no_unit_and_is_refused_with_400_as_on_restate(rt, client) -> None:
    with pytest.raises(HttpError) as err:
        await client.object_send(S.add, key="z", arg=1, send_delay=timedelta(seconds=1))
    assert err.value.status_code == 400
    assert "must be a ISO8601 duration" in json.loads(err.value.body)["message"]
    assert len(rt.invocations()) == 0


async def test_a_terminal_error_reaches_the_sdk_client_as_its_status(client) -> None:
    with pytest.raises(HttpError) as err:
        await client.service_call(S.fail, arg=418)
    assert err.value.status_code == 418 and json.loads(err.value.body)["message"] == "nope"
