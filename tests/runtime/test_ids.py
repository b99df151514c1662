"""Invocation ids are Restate's: `inv_1` + 33 base62 characters holding a partition key and a uuid, derived
as restate-server derives them for workflow runs and idempotent invocations, seeded for the rest."""

from __future__ import annotations

import base64
import random
import re
from pathlib import Path

import pytest
import restate

import playground as pg
from playground.runtime import ids

wf = restate.Workflow("IdWf")


@wf.main()
async def run(ctx: restate.WorkflowContext, x: str) -> str:
    return x


svc = restate.Service("IdSvc")


@svc.handler()
async def echo(ctx: restate.Context, x: str) -> str:
    return x


@svc.handler()
async def wait_awakeable(ctx: restate.Context) -> str:
    awk_id, fut = ctx.awakeable(type_hint=str)
    ctx.object_send(keep, key="awk", arg=awk_id)
    return await fut


@svc.handler()
async def send_idempotent(ctx: restate.Context, idem: str) -> str:
    return await ctx.object_send(keep, key="ok-1", arg="from a handler", idempotency_key=idem).invocation_id()


obj = restate.VirtualObject("IdObj")


@obj.handler()
async def keep(ctx: restate.ObjectContext, x: str) -> str:
    ctx.set("v", x)
    return x


SERVICES = (wf, svc, obj)
ID_RE = re.compile(r"inv_1[0-9a-zA-Z]{33}")

# Sent to restate-server 1.7.12 (playground.real) with exactly these services, keys and idempotency keys.
FROM_THE_REAL_SERVER = {
    "workflow IdWf/wk-1": "inv_1kxR56vQEaV77ATHoS0P9wQOSbY8EbqGWb",
    "IdSvc/echo, idempotency key ik-1": "inv_1dI5uMOs368p6NID97mTHoiyVkSmhLqPpX",
    "IdObj/ok-1/keep, idempotency key ik-1": "inv_1d9lPZpoAwcD0pdVy7TbQJLQ696YMfdeI6",
}
# ... and the partition key part (the first 16 characters) of a plain send to IdObj/ok-2/keep
REAL_OK2_PREFIX = "inv_160i27zCERdg"


async def test_workflow_runs_and_idempotent_invocations_get_the_id_restate_server_gives_them() -> None:
    rt = pg.Runtime(*SERVICES)
    got = [(await rt.workflow_send(run, key="wk-1", arg="a")).invocation_id,
           (await rt.service_send(echo, arg="a", idempotency_key="ik-1")).invocation_id,
           (await rt.object_send(keep, key="ok-1", arg="a", idempotency_key="ik-1")).invocation_id]
    plain = (await rt.object_send(keep, key="ok-2", arg="a")).invocation_id
    assert plain.startswith(REAL_OK2_PREFIX) and plain not in got
    await rt.settle()
    assert got == list(FROM_THE_REAL_SERVER.values())
    assert [str(ids.derived("IdWf", "wk-1", "run", None, workflow_run=True)),
            str(ids.derived("IdSvc", None, "echo", "ik-1", workflow_run=False)),
            str(ids.derived("IdObj", "ok-1", "keep", "ik-1", workflow_run=False))] \
        == list(FROM_THE_REAL_SERVER.values())
    assert ids.derived("IdSvc", None, "echo", None, workflow_run=False) is None  # a plain call: random uuid


async def test_an_idempotent_send_from_a_handler_gets_the_same_id_as_one_from_the_ingress() -> None:
    rt = pg.Runtime(*SERVICES)
    from_handler = await rt.service_call(send_idempotent, arg="ik-1")
    assert from_handler == FROM_THE_REAL_SERVER["IdObj/ok-1/keep, idempotency key ik-1"]
    again = await rt.object_send(keep, key="ok-1", arg="a", idempotency_key="ik-1")
    assert (again.status, again.invocation_id) == ("PreviouslyAccepted", from_handler)


def test_restates_example_id_and_edge_values_round_trip_through_parse_and_encode() -> None:
    example = "inv_1hWAIByqndQX4xxedaY6awQ1h29lZ9cJW3"  # from Restate's documentation
    assert len(example) == ids.ID_LENGTH == 38 and str(ids.parse(example)) == example
    rng = random.Random(1)
    cases = [(0, 0), (1, 1), (2**64 - 1, 2**128 - 1), (2**63, 2**127)]
    cases += [(rng.getrandbits(64), rng.getrandbits(128)) for _ in range(200)]
    for pk, uuid in cases:
        text = ids.encode(pk, uuid)
        assert ID_RE.fullmatch(text), text
        assert ids.parse(text) == (pk, uuid)
        assert ids.from_bytes(ids.InvocationId(pk, uuid).to_bytes()) == (pk, uuid)
    assert ids.encode(0, 0) == "inv_1" + "0" * 33
    # each number is written with its bytes reversed (Restate's to_be() on a little-endian machine)
    assert ids.encode(2**56, 2**120) == "inv_1" + "0" * 10 + "1" + "0" * 21 + "1"
    with pytest.raises(ValueError, match="not an invocation id"):
        ids.encode(2**64, 1)


@pytest.mark.parametrize(("text", "reason"), [
    ("", "bad length"),
    ("nope", "bad format"),
    ("foo_1abc", "unrecognized resource type: foo"),
    ("inv_nope", "unrecognized codec version"),  # restate-server's answer, checked
    ("inv_", "bad length"),
    ("sign_1kxR56vQEaV77ATHoS0P9wQOSbY8EbqGWb", "id doesn't match the expected type"),
    ("inv_1kxR56vQEaV77ATHoS0P9wQOSbY8EbqGW", "bad length"),  # checked
    ("inv_1kxR56vQEaV77ATHoS0P9wQOSbY8EbqGWbX", "bad length"),
    ("inv_1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "base62 decode error"),  # checked: the uuid overflows u128
    ("inv_1ZZZZZZZZZZZ0000000000000000000001", "base62 decode error"),  # the partition key overflows u64
    ("inv_1kxR56vQEaV77ATHoS0P9wQOSbY8Ebq-Wb", "base62 decode error"),
])
def test_parse_refuses_what_restate_refuses_with_its_reason(text: str, reason: str) -> None:
    with pytest.raises(ids.BadInvocationId) as ei:
        ids.parse(text)
    assert (ei.value.reason, str(ei.value)) == (reason, f"bad invocation id '{text}': {reason}")
    with pytest.raises(TypeError, match="is a str"):
        ids.parse(b"inv_1")  # type: ignore[arg-type]


async def test_plain_ids_follow_the_seed_and_use_restates_partition_keys() -> None:
    async def sends(seed: int) -> list[str]:
        rt = pg.Runtime(*SERVICES, seed=seed)
        out = [(await rt.service_send(echo, arg=str(i))).invocation_id for i in range(20)]
        out += [(await rt.object_send(keep, key="ok-2", arg=str(i))).invocation_id for i in range(3)]
        await rt.settle()
        return out

    first, again, other = await sends(7), await sends(7), await sends(8)
    assert first == again and not set(first) & set(other)
    service_keys = {ids.service_partition_key("IdSvc", b) for b in range(ids.BUCKETS)}
    parsed = [ids.parse(i) for i in first]
    assert all(p.partition_key in service_keys for p in parsed[:20])
    assert len({p.partition_key for p in parsed[:20]}) > 10  # spread over the service's keys
    assert {p.partition_key for p in parsed[20:]} == {ids.key_partition_key("ok-2")}
    assert all(i.startswith(REAL_OK2_PREFIX) for i in first[20:]) and len(set(first)) == len(first)


async def test_the_sdk_gets_the_24_raw_bytes_and_its_awakeable_ids_embed_them_as_restates_do() -> None:
    rt = pg.Runtime(*SERVICES)
    h = await rt.service_send(wait_awakeable)
    await rt.settle()
    awk = rt.state("IdObj", "awk")["v"]
    assert re.fullmatch(r"sign_1[A-Za-z0-9_-]{38}", awk), awk  # 44 characters, as restate-server's
    raw = base64.urlsafe_b64decode(awk[len("sign_1"):] + "==")
    assert raw[:24] == ids.parse(h.invocation_id).to_bytes() == rt.invocation(h.invocation_id).start_id
    assert int.from_bytes(raw[24:], "big") == 17  # the SDK's first signal index
    rt.resolve_awakeable(awk, "done")
    assert await rt.attach(h.invocation_id) == "done"


async def test_service_ids_after_a_reopen_are_those_of_a_runtime_that_never_stopped(tmp_path: Path) -> None:
    db = str(tmp_path / "ids.sqlite")
    n, cut = ids.SeededIds.BATCH + 5, ids.SeededIds.BATCH - 2  # the ids are drawn in batches: cross one

    async def straight() -> list[str]:
        rt = pg.Runtime(*SERVICES, seed=3)
        return [(await rt.service_send(echo, arg=str(i))).invocation_id for i in range(n)]

    async def part(rng: range) -> list[str]:
        rt = pg.Runtime(*SERVICES, seed=3, store=db)
        out = [(await rt.service_send(echo, arg=str(i))).invocation_id for i in rng]
        await rt.settle()
        rt.close()
        return out

    assert await part(range(cut)) + await part(range(cut, n)) == await straight()


def test_the_seeded_sequence_skips_exactly_the_ids_drawn() -> None:
    fresh = ids.SeededIds(11)
    sequence = [fresh.next("IdSvc", None if i % 3 else "k") for i in range(2 * ids.SeededIds.BATCH + 1)]
    for drawn in (0, 1, ids.SeededIds.BATCH - 1, ids.SeededIds.BATCH, 2 * ids.SeededIds.BATCH):
        resumed = ids.SeededIds(11, drawn)
        assert resumed.next("IdSvc", None if drawn % 3 else "k") == sequence[drawn]
    for text, raw, _seed in sequence:
        assert ids.parse(text).to_bytes() == raw  # the raw bytes are those of the id
