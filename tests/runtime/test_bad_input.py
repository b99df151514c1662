"""Bad input gets a clear, immediate error and leaves the runtime usable."""

from __future__ import annotations

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


async def test_an_undecorated_function_is_rejected_with_a_hint() -> None:
    with pytest.raises(TypeError, match=r"not_a_handler is not a Restate handler: decorate it"):
        await rt_().service_call(not_a_handler, arg=1)


def test_registering_something_that_is_not_a_service_is_rejected() -> None:
    with pytest.raises(TypeError, match="pass the service object"):
        pg.Runtime(greet)
    with pytest.raises(TypeError, match="got int"):
        pg.Runtime(3)
    with pytest.raises(ValueError, match="two services named 'Greeter'"):
        pg.Runtime(greeter, greeter)


async def test_a_handler_of_an_unregistered_service_gets_restates_404() -> None:
    rt = pg.Runtime(counter)
    with pytest.raises(restate.TerminalError) as ei:
        await rt.service_call(greet, arg="x")
    assert ei.value.status_code == 404
    assert ei.value.message == ("service 'Greeter' not found, make sure to register the service before "
                                "calling it.")
    with pytest.raises(restate.TerminalError) as ei:
        await rt.generic_call("Counter", "nope", b"1", key="k")
    assert ei.value.status_code == 404 and "handler 'nope' was not found" in ei.value.message


async def test_an_object_call_needs_a_key_and_a_service_takes_none() -> None:
    rt = rt_()
    with pytest.raises(ValueError, match=r"Counter/add needs key=\.\.\."):
        await rt.object_call(add, arg=1)
    with pytest.raises(TypeError, match="key"):
        await rt.service_call(greet, arg="x", key="k")  # type: ignore[call-arg]
    with pytest.raises(restate.TerminalError) as ei:
        await rt.generic_call("Greeter", "greet", b'"x"', key="k")
    assert (ei.value.status_code, ei.value.message) == (400, "a key was provided, but the callee 'Greeter' is a "
                                                             "Service")
    with pytest.raises(TypeError, match="key must be a str"):
        await rt.object_call(add, key=5, arg=1)
    with pytest.raises(ValueError, match="workflow id"):
        await rt.workflow_call(run)
    with pytest.raises(restate.TerminalError) as ei:
        await rt.generic_call("Counter", "add", b"1")
    assert ei.value.status_code == 400


async def test_the_wrong_call_kind_names_the_right_one() -> None:
    rt = rt_()
    with pytest.raises(TypeError, match=r"belongs to a Virtual Object: use rt.object_call"):
        await rt.service_call(add, arg=1)
    with pytest.raises(TypeError, match=r"belongs to a Service: use rt.service_call"):
        await rt.object_call(greet, key="k", arg="x")
    with pytest.raises(TypeError, match="belongs to a Workflow"):
        await rt.object_send(run, key="k")


async def test_an_argument_the_serde_cannot_encode_is_rejected_before_anything_runs() -> None:
    rt = rt_()
    with pytest.raises(TypeError, match=r"cannot encode arg for Greeter/greet"):
        await rt.service_call(greet, arg=object())
    with pytest.raises(ValueError, match="takes no input"):
        await rt.service_call(ping, arg="unexpected")
    with pytest.raises(TypeError, match="raw bytes"):
        await rt.generic_call("Greeter", "greet", "not bytes")  # type: ignore[arg-type]
    assert len(rt.invocations()) == 0
    assert await rt.service_call(ping) == "pong"


async def test_input_the_handler_cannot_parse_fails_terminally_as_the_sdk_reports_it() -> None:
    rt = rt_()
    with pytest.raises(restate.TerminalError) as ei:
        await rt.generic_call("Greeter", "greet", b"{not json")
    assert ei.value.status_code == 500 and ei.value.message.startswith("Unable to parse an input argument")
    with pytest.raises(restate.TerminalError) as ei:
        await rt.generic_call("Greeter", "order", b'{"item": "tea"}')
    assert "Unable to parse an input argument" in ei.value.message
    assert await rt.service_call(order, arg=Order(item="tea", qty=2)) == 2
    assert rt.invocations().retry_count.tolist() == [0, 0, 0]  # parse failures are not retried


async def test_a_negative_delay_is_rejected() -> None:
    rt = rt_()
    with pytest.raises(ValueError, match="send_delay must not be negative"):
        await rt.service_send(greet, arg="x", send_delay=timedelta(seconds=-5))
    with pytest.raises(TypeError, match="timedelta"):
        await rt.service_send(greet, arg="x", send_delay=5)  # type: ignore[arg-type]


async def test_bad_idempotency_keys_and_headers_are_rejected() -> None:
    rt = rt_()
    with pytest.raises(ValueError, match="idempotency_key"):
        await rt.service_call(greet, arg="x", idempotency_key="")
    with pytest.raises(TypeError, match="headers must be a dict"):
        await rt.service_call(greet, arg="x", headers=[("a", "b")])  # type: ignore[arg-type]


UNKNOWN_ID = "inv_1kxR56vQEaV77ATHoS0P9wQOSbY8EbqGWb"  # well formed, but no invocation has it


async def test_output_and_attach_of_an_unknown_id_answer_404_as_restates_ingress_does() -> None:
    rt = rt_()
    with pytest.raises(restate.TerminalError) as ei:
        rt.output(UNKNOWN_ID)
    assert (ei.value.status_code, ei.value.message) == (404, "invocation not found")
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(UNKNOWN_ID)
    assert (ei.value.status_code, ei.value.message) == (404, "not found")
    with pytest.raises(KeyError, match=r"rt.invocations"):
        rt.journal(UNKNOWN_ID)  # introspection of an unknown id is the caller's mistake


async def test_output_and_attach_of_a_malformed_id_answer_400_with_restates_reason() -> None:
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


async def test_ingress_headers_reach_the_handler() -> None:
    svc = restate.Service("Headers")

    @svc.handler()
    async def echo_headers(ctx: restate.Context) -> dict:
        return dict(ctx.request().headers)

    rt = pg.Runtime(svc)
    assert (await rt.service_call(echo_headers, headers={"x-my-header": "v"}))["x-my-header"] == "v"


# ---------------------------------------------------------------------------------------------- issue 13
far = restate.Service("Far")
ONE_TRY = restate.InvocationRetryPolicy(max_attempts=2, on_max_attempts="kill")
FOREVER = timedelta(days=3_000_000)  # past year 9999, the last the clock can show


@far.handler(invocation_retry_policy=ONE_TRY)
async def sleep_forever(ctx: restate.Context) -> str:
    await ctx.sleep(FOREVER)
    return "woke"


@far.handler(invocation_retry_policy=ONE_TRY)
async def send_forever(ctx: restate.Context) -> str:
    ctx.service_send(greet, arg="later", send_delay=FOREVER)
    return "sent"


promised = restate.Workflow("Promised")


@promised.main()
async def wait_for_it(ctx: restate.WorkflowContext) -> str:
    return await ctx.promise("p", type_hint=str).value()


async def test_a_due_time_beyond_the_clocks_range_is_refused_and_creates_nothing() -> None:
    rt = rt_()
    before = rt.now
    for delay in (FOREVER, timedelta.max):
        with pytest.raises(ValueError, match=r"send_delay would be due after 9999-12-31T23:59:59\.999"):
            await rt.service_send(greet, arg="x", send_delay=delay)
        with pytest.raises(ValueError, match="send_delay would be due after 9999-12-31"):
            await rt.generic_send("Counter", "add", b"1", key="k", send_delay=delay)
        with pytest.raises(ValueError, match=r"advance\(\) would be due after 9999-12-31"):
            await rt.advance(delay)
    with pytest.raises(TypeError, match=r"advance\(\) takes a datetime.timedelta"):
        await rt.advance(None)  # type: ignore[arg-type]
    assert rt.now == before and len(rt.invocations()) == 0
    assert rt.sql("SELECT count(*) AS n FROM sys_invocation").n[0] == 0
    await rt.advance(timedelta(days=365 * 7000))  # the far end of the range itself is fine
    assert rt.now.year == 9021 and await rt.service_call(greet, arg="late") == "Hello late"


async def test_a_sleep_or_send_beyond_the_clocks_range_fails_that_invocation_not_the_runtime() -> None:
    rt = pg.Runtime(greeter, far)
    for handler, what in ((sleep_forever, "ctx.sleep"), (send_forever, "cannot call Greeter/greet: send_delay")):
        with pytest.raises(restate.TerminalError) as ei:
            await rt.service_call(handler)
        assert ei.value.message.startswith(f"{what} would be due after 9999-12-31T23:59:59.999000+00:00, the "
                                           f"latest time the clock can represent")
    # the refused command was not stored (a retry sends it again), and everything still reads
    assert [len(rt.invocation(i).journal) for i in rt.invocations().id] == [1, 1]
    assert rt.now.year == 2026 and len(rt.sql("SELECT * FROM sys_journal")) == 2
    assert await rt.service_call(greet, arg="x") == "Hello x"


async def test_a_key_or_header_that_cannot_go_on_the_wire_is_refused_and_creates_nothing() -> None:
    rt = rt_()
    with pytest.raises(ValueError, match=r"key must be text that UTF-8 can encode; '\\ud800' cannot be "
                                         r"encoded \(surrogates not allowed, at position 0\)"):
        await rt.object_call(add, key="\ud800", arg=1)
    with pytest.raises(TypeError, match="key must be a str, not int"):
        await rt.generic_call("Counter", "add", b"1", key=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"headers must be a dict of str to str; 'a': 1 is str: int"):
        await rt.generic_call("Counter", "add", b"1", key="k", headers={"a": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="a header name must be text that UTF-8 can encode"):
        await rt.object_send(add, key="k", arg=1, headers={"\udfff": "v"})
    with pytest.raises(ValueError, match="idempotency_key must be text that UTF-8 can encode"):
        await rt.object_send(add, key="k", arg=1, idempotency_key="\ud800")
    with pytest.raises(TypeError, match="service must be a str"):
        await rt.generic_call(None, "add", b"1", key="k")  # type: ignore[arg-type]
    assert len(rt.invocations()) == 0
    assert await rt.object_call(add, key="k", arg=2) == 2  # no orphan holds the key's lock


async def test_a_failure_while_starting_an_attempt_is_that_attempts_failure_not_an_orphan(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rt = rt_()
    deployment = rt._services["Counter"].deployment
    real_open = deployment.open
    calls: list[str] = []

    def failing_open(*args: object) -> object:
        calls.append("open")
        if len(calls) == 1:
            raise OSError("injected: the deployment cannot be reached")
        return real_open(*args)

    monkeypatch.setattr(deployment, "open", failing_open)
    handle = await rt.object_send(add, key="k", arg=3)
    inv = rt.invocation(handle.invocation_id)
    assert (inv.status, inv.attempt) == ("backing-off", None)
    assert "could not start an attempt: OSError('injected" in inv.errors[0].message
    assert await rt.object_call(add, key="k", arg=4) == 4  # queued behind it; it retried and finished
    assert rt.output(handle.invocation_id) == 3 and calls == ["open"] * 3


def test_runtime_arguments_of_the_wrong_kind_are_refused_with_what_to_pass() -> None:
    with pytest.raises(TypeError, match=r"start must be a timezone-aware datetime such as datetime\(2026"):
        pg.Runtime(start="2026-01-01")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seed must be an int"):
        pg.Runtime(seed="x")  # type: ignore[arg-type]
    for store in ("", ":memory:"):
        with pytest.raises(ValueError, match="pass store=None to keep everything in memory"):
            pg.Runtime(store=store)
    with pytest.raises(ValueError, match="a service needs a non-empty name"):
        pg.Runtime(restate.Service(""))


async def test_completing_an_awakeable_or_promise_checks_every_argument_before_completing_anything() -> None:
    rt = pg.Runtime(promised)
    with pytest.raises(TypeError, match=r"awakeable_id must be the str id of an awakeable \('sign_1"):
        rt.resolve_awakeable(None, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="code must be an int error code such as 500, not str"):
        rt.reject_awakeable("sign_1x", "no", code="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="code must be an int error code"):
        rt.reject_promise("Promised", "k", "p", "no", code="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="message must be a str"):
        rt.reject_promise("Promised", "k", "p", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key must be a str, not int"):
        rt.resolve_promise("Promised", 5, "p", "v")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'Nope' is not a registered workflow.*\(registered: 'Promised'\)"):
        rt.resolve_promise("Nope", "k", "p", "v")
    rt.resolve_promise("Promised", "k", "p", "yes")  # none of the refusals above completed it
    with pytest.raises(restate.TerminalError) as ei:
        rt.resolve_promise("Promised", "k", "p", "again")
    assert (ei.value.status_code, ei.value.message) == (409, "promise was already completed")


async def test_a_promise_resolved_before_its_workflow_runs_is_what_the_run_sees() -> None:
    # As in Restate, where a shared handler may complete a promise before the run (conformance: Payment
    # "Early" in test_conf_workflows_ingress.py, on the real server too)
    rt = pg.Runtime(promised)
    rt.resolve_promise("Promised", "early", "p", "ready")
    assert await rt.workflow_call(wait_for_it, key="early") == "ready"


def test_fault_rules_check_their_arguments() -> None:
    rt = rt_()
    with pytest.raises(TypeError, match="times must be an int >= 1, not str"):
        rt.faults.fail_run("x", times="a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"name must be the str name given to ctx.run"):
        rt.faults.fail_run(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="entry must be an int >= 0, not str"):
        rt.faults.crash_after(add, entry="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"times must be >= 1 \(got 0\)"):
        rt.faults.crash_after(add, entry=1, times=0)
    assert not rt.faults.armed
