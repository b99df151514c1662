"""restate-sdk's own client (`restate.create_client`) against the playground's HTTP door."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
import restate
from restate.client_types import HttpError

import playground as pg

import http_services as S


def run(scenario) -> None:
    async def main() -> None:
        rt = pg.Runtime(*S.ALL)
        async with rt.serve_http() as door:
            async with restate.create_client(door.ingress_url) as client:
                await asyncio.wait_for(scenario(rt, client), 30)
    asyncio.run(main())


def test_the_sdk_client_calls_a_service_an_object_and_a_workflow() -> None:
    async def scenario(rt, client):
        assert await client.service_call(S.greet, arg="c") == "hi c"
        assert await client.object_call(S.add, key="z", arg=2) == 2
        assert await client.workflow_call(S.run, key="w", arg="x") == "ran x"
        assert await client.service_call(S.nap, arg="n") == "rested n"  # an hour, virtual
    run(scenario)


def test_the_sdk_client_sends_and_an_idempotency_key_gives_the_same_id() -> None:
    async def scenario(rt, client):
        first = await client.object_send(S.add, key="z", arg=1, idempotency_key="i")
        again = await client.object_send(S.add, key="z", arg=1, idempotency_key="i")
        assert first.invocation_id == again.invocation_id
        await rt.settle()
        assert rt.state("Counter", "z") == {"total": 1}
        assert rt.invocation(first.invocation_id).idempotency_key == "i"
    run(scenario)


def test_the_sdk_clients_send_delay_has_no_unit_and_is_refused_with_400_as_on_restate() -> None:
    async def scenario(rt, client):
        with pytest.raises(HttpError) as err:
            await client.object_send(S.add, key="z", arg=1, send_delay=timedelta(seconds=1))
        assert err.value.status_code == 400
        assert "must be a ISO8601 duration" in json.loads(err.value.body)["message"]
        assert len(rt.invocations()) == 0
    run(scenario)


def test_a_terminal_error_reaches_the_sdk_client_as_its_status() -> None:
    async def scenario(rt, client):
        with pytest.raises(HttpError) as err:
            await client.service_call(S.fail, arg=418)
        assert err.value.status_code == 418 and json.loads(err.value.body)["message"] == "nope"
    run(scenario)
