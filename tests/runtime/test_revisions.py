"""Re-running a cell that redefines a service registers a new revision: new invocations use it, running ones
keep theirs."""

from __future__ import annotations

from datetime import timedelta

import restate

import playground as pg


def define(version: str) -> tuple[restate.Service, object]:
    svc = restate.Service("Versioned")

    @svc.handler()
    async def work(ctx: restate.Context) -> str:
        await ctx.sleep(timedelta(minutes=1))
        return version

    return svc, work


async def test_new_invocations_use_the_new_revision_while_running_ones_keep_theirs() -> None:
    svc1, work1 = define("v1")
    rt = pg.Runtime(svc1)
    running = await rt.service_send(work1)
    await rt.settle()
    svc2, work2 = define("v2")
    rt.register(svc2)
    fresh = await rt.service_send(work2)
    await rt.advance(timedelta(minutes=1))
    assert rt.output(running.invocation_id) == "v1"  # resumed on its original revision
    assert rt.output(fresh.invocation_id) == "v2"
    assert (rt.invocation(running.invocation_id).revision, rt.invocation(fresh.invocation_id).revision) == (1, 2)
    # an old handler function still addresses the service by name: the latest revision answers
    assert await rt.service_call(work1) == "v2"


def test_register_requires_at_least_one_service() -> None:
    import pytest

    with pytest.raises(ValueError, match="at least one"):
        pg.Runtime().register()
