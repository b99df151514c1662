"""Bad input gets a clear, immediate error and leaves the runtime usable."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pydantic
import pytest
import restate

import playground as pg

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}"


@greeter.handler()
async def ping(ctx: restate.Context) -> str:
    return "pong"


class Order(pydantic.BaseModel):
    item: str
    qty: int


@greeter.handler()
async def order(ctx: restate.Context, o: Order) -> int:
    return o.qty


counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    return n


wf = restate.Workflow("Wf")


@wf.main()
async def run(ctx: restate.WorkflowContext) -> str:
    return "ran"


async def not_a_handler(ctx: object, x: int) -> int:
    return x


def rt_() -> pg.Runtime:
    return pg.Runtime(greeter, counter, wf)


def run_(coro_fn):  # noqa: ANN001 - helper
    return asyncio.run(coro_fn())


def test_an_undecorated_function_is_rejected_with_a_hint() -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match=r"not_a_handler is not a Restate handler: decorate it"):
            await rt_().service_call(not_a_handler, arg=1)

    run_(main)


def test_registering_something_that_is_not_a_service_is_rejected() -> None:
    with pytest.raises(TypeError, match="pass the service object"):
        pg.Runtime(greet)
    with pytest.raises(TypeError, match="got int"):
        pg.Runtime(3)
    with pytest.raises(ValueError, match="two services named 'Greeter'"):
        pg.Runtime(greeter, greeter)


def test_a_handler_of_an_unregistered_service_gets_restates_404() -> None:
    async def main() -> None:
        rt = pg.Runtime(counter)
        with pytest.raises(restate.TerminalError) as ei:
            await rt.service_call(greet, arg="x")
        assert ei.value.status_code == 404
        assert ei.value.message == ("service 'Greeter' not found, make sure to register the service before "
                                    "calling it.")
        with pytest.raises(restate.TerminalError) as ei:
            await rt.generic_call("Counter", "nope", b"1", key="k")
        assert ei.value.status_code == 404 and "handler 'nope' was not found" in ei.value.message

    run_(main)


def test_an_object_call_needs_a_key_and_a_service_takes_none() -> None:
    async def main() -> None:
        rt = rt_()
        with pytest.raises(ValueError, match=r"Counter/add needs key=\.\.\."):
            await rt.object_call(add, arg=1)
        with pytest.raises(TypeError, match="key"):
            await rt.service_call(greet, arg="x", key="k")  # type: ignore[call-arg]
        with pytest.raises(restate.TerminalError) as ei:
            await rt.generic_call("Greeter", "greet", b'"x"', key="k")
        assert (ei.value.status_code, ei.value.message) == (400, "a key was provided, but the callee 'Greeter' is a Service")
        with pytest.raises(TypeError, match="key must be a str"):
            await rt.object_call(add, key=5, arg=1)
        with pytest.raises(ValueError, match="workflow id"):
            await rt.workflow_call(run)
        with pytest.raises(restate.TerminalError) as ei:
            await rt.generic_call("Counter", "add", b"1")
        assert ei.value.status_code == 400

    run_(main)


def test_the_wrong_call_kind_names_the_right_one() -> None:
    async def main() -> None:
        rt = rt_()
        with pytest.raises(TypeError, match="belongs to a Virtual Object: use rt.object_call"):
            await rt.service_call(add, arg=1)
        with pytest.raises(TypeError, match="belongs to a Service: use rt.service_call"):
            await rt.object_call(greet, key="k", arg="x")
        with pytest.raises(TypeError, match="belongs to a Workflow"):
            await rt.object_send(run, key="k")

    run_(main)


def test_an_argument_the_serde_cannot_encode_is_rejected_before_anything_runs() -> None:
    async def main() -> None:
        rt = rt_()
        with pytest.raises(TypeError, match=r"cannot encode arg for Greeter/greet"):
            await rt.service_call(greet, arg=object())
        with pytest.raises(ValueError, match="takes no input"):
            await rt.service_call(ping, arg="unexpected")
        with pytest.raises(TypeError, match="raw bytes"):
            await rt.generic_call("Greeter", "greet", "not bytes")  # type: ignore[arg-type]
        assert len(rt.invocations()) == 0
        assert await rt.service_call(ping) == "pong"

    run_(main)


def test_input_the_handler_cannot_parse_fails_terminally_as_the_sdk_reports_it() -> None:
    async def main() -> None:
        rt = rt_()
        with pytest.raises(restate.TerminalError) as ei:
            await rt.generic_call("Greeter", "greet", b"{not json")
        assert ei.value.status_code == 500 and ei.value.message.startswith("Unable to parse an input argument")
        with pytest.raises(restate.TerminalError) as ei:
            await rt.generic_call("Greeter", "order", b'{"item": "tea"}')
        assert "Unable to parse an input argument" in ei.value.message
        assert await rt.service_call(order, arg=Order(item="tea", qty=2)) == 2
        assert rt.invocations().retry_count.tolist() == [0, 0, 0]  # parse failures are not retried

    run_(main)


def test_a_negative_delay_is_rejected() -> None:
    async def main() -> None:
        rt = rt_()
        with pytest.raises(ValueError, match="send_delay must not be negative"):
            await rt.service_send(greet, arg="x", send_delay=timedelta(seconds=-5))
        with pytest.raises(TypeError, match="timedelta"):
            await rt.service_send(greet, arg="x", send_delay=5)  # type: ignore[arg-type]

    run_(main)


def test_bad_idempotency_keys_and_headers_are_rejected() -> None:
    async def main() -> None:
        rt = rt_()
        with pytest.raises(ValueError, match="idempotency_key"):
            await rt.service_call(greet, arg="x", idempotency_key="")
        with pytest.raises(TypeError, match="headers must be a dict"):
            await rt.service_call(greet, arg="x", headers=[("a", "b")])  # type: ignore[arg-type]

    run_(main)


UNKNOWN_ID = "inv_1kxR56vQEaV77ATHoS0P9wQOSbY8EbqGWb"  # well formed, but no invocation has it


def test_output_and_attach_of_an_unknown_id_answer_404_as_restates_ingress_does() -> None:
    async def main() -> None:
        rt = rt_()
        with pytest.raises(restate.TerminalError) as ei:
            rt.output(UNKNOWN_ID)
        assert (ei.value.status_code, ei.value.message) == (404, "invocation not found")
        with pytest.raises(restate.TerminalError) as ei:
            await rt.attach(UNKNOWN_ID)
        assert (ei.value.status_code, ei.value.message) == (404, "not found")
        with pytest.raises(KeyError, match="rt.invocations"):
            rt.journal(UNKNOWN_ID)  # introspection of an unknown id is the caller's mistake

    run_(main)


def test_output_and_attach_of_a_malformed_id_answer_400_with_restates_reason() -> None:
    async def main() -> None:
        rt = rt_()
        with pytest.raises(restate.TerminalError) as ei:
            rt.output("inv_nope")
        assert (ei.value.status_code, ei.value.message) == (
            400, "bad invocation id 'inv_nope': unrecognized codec version")
        with pytest.raises(restate.TerminalError) as ei:
            await rt.attach(UNKNOWN_ID[:-1])
        assert (ei.value.status_code, ei.value.message) == (400, f"bad invocation id '{UNKNOWN_ID[:-1]}': bad length")
        for op in (rt.journal, rt.cancel, rt.kill):
            with pytest.raises(ValueError, match="invocation_id: bad invocation id 'inv_nope'"):
                op("inv_nope")

    run_(main)


def test_ingress_headers_reach_the_handler() -> None:
    svc = restate.Service("Headers")

    @svc.handler()
    async def echo_headers(ctx: restate.Context) -> dict:
        return dict(ctx.request().headers)

    async def main() -> None:
        rt = pg.Runtime(svc)
        assert (await rt.service_call(echo_headers, headers={"x-my-header": "v"}))["x-my-header"] == "v"

    run_(main)
