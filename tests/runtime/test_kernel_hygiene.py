"""The SDK's habits that hurt in a kernel: noisy tracebacks in cell output, and taking over SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

import restate

import playground as pg

svc = restate.Service("Noisy")
tries: list[int] = []


@svc.handler()
async def fails_once(ctx: restate.Context) -> str:
    tries.append(1)
    if len(tries) == 1:
        raise ValueError("first attempt fails")
    return "ok"


async def test_handler_failures_do_not_log_tracebacks_but_are_recorded(caplog) -> None:
    tries.clear()

    with caplog.at_level(logging.DEBUG):
        rt = pg.Runtime(svc)
        assert await rt.service_call(fails_once) == "ok"
    assert [r for r in caplog.records if r.name.startswith("restate")] == []
    err = rt.invocation(rt.invocations().id.iloc[0]).errors[0]
    assert err.message == "ValueError('first attempt fails')" and "Traceback" in err.stacktrace


async def test_the_sdk_does_not_take_over_sigterm_on_the_kernel_loop() -> None:
    rt = pg.Runtime(svc)
    tries.clear()
    tries.append(1)
    await rt.service_call(fails_once)
    loop = asyncio.get_running_loop()
    assert (signal.SIGTERM in getattr(loop, "_signal_handlers", {})) is False


def test_a_loop_closing_with_invocations_in_flight_does_not_hang() -> None:
    """Its own loop on purpose: what is tested is asyncio.run closing it."""
    waiter = restate.Service("Sleepy")

    @waiter.handler()
    async def forever(ctx: restate.Context) -> None:
        await ctx.awakeable()[1]

    async def main() -> None:
        rt = pg.Runtime(waiter)
        await rt.service_send(forever)
        await rt.settle()

    asyncio.run(main())  # returning at all is the assertion: shutdown cancels the in-flight attempt
