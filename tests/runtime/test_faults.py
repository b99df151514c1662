"""Fault injection: crashes after a journal entry, lost ctx.run results, a dropped deployment."""

from __future__ import annotations

from datetime import timedelta

import pytest
import restate

import playground as pg

effects: list[str] = []
starts: list[str] = []

svc = restate.Service("Faulty")


@svc.handler()
async def charge_then_mail(ctx: restate.Context, who: str) -> str:
    starts.append(who)

    async def charge() -> str:
        effects.append(f"charge {who}")
        return "charged"

    async def mail() -> str:
        effects.append(f"mail {who}")
        return "mailed"

    a = await ctx.run_typed("charge", charge)
    b = await ctx.run_typed("mail", mail)
    return f"{a}+{b}"


@svc.handler()
async def nap(ctx: restate.Context) -> str:
    starts.append("nap")
    await ctx.sleep(timedelta(minutes=10))
    return "rested"


def make() -> pg.Runtime:
    effects.clear()
    starts.clear()
    return pg.Runtime(svc)


async def test_a_crash_after_a_stored_entry_replays_it_and_never_repeats_the_side_effect() -> None:
    rt = make()
    rt.faults.crash_after(charge_then_mail, entry=2)  # 0 Input, 1 Run charge, 2 its result
    assert await rt.service_call(charge_then_mail, arg="ann") == "charged+mailed"
    assert effects == ["charge ann", "mail ann"]  # the charge ran once: its result was stored
    assert starts == ["ann", "ann"]
    inv = rt.invocation(rt.invocations().id.iloc[0])
    assert [e.message for e in inv.errors] == [
        "injected crash after journal entry 2 (rt.faults.crash_after)"]
    assert "attempt 1 failed: [500] injected crash after journal entry 2" in inv._repr_html_()


async def test_a_lost_run_result_makes_the_side_effect_run_again_at_least_once() -> None:
    rt = make()
    rt.faults.fail_run("charge", times=2)
    assert await rt.service_call(charge_then_mail, arg="bob") == "charged+mailed"
    assert effects == ["charge bob"] * 3 + ["mail bob"]
    inv = rt.invocation(rt.invocations().id.iloc[0])
    assert len(inv.errors) == 2 and all("ctx.run 'charge'" in e.message for e in inv.errors)
    assert rt.now == make().now + timedelta(milliseconds=500 + 1000)  # Restate's default backoff


async def test_dropping_the_deployment_fails_attempts_in_flight_and_they_resume_by_replay() -> None:
    rt = make()
    h = await rt.service_send(nap)
    await rt.settle()
    assert rt.faults.drop_deployment() == 1
    await rt.settle()
    inv = rt.invocation(h.invocation_id)
    assert inv.status == "backing-off" and "deployment went away" in inv.last_failure.message
    assert await rt.attach(h.invocation_id) == "rested"
    assert starts == ["nap", "nap"]
    assert rt.now == make().now + timedelta(minutes=10)  # the sleep kept its original wake-up time


async def test_faults_apply_only_to_matching_invocations_and_only_as_often_as_asked() -> None:
    rt = make()
    rt.faults.crash_after("Faulty/nap", entry=0)
    assert await rt.service_call(charge_then_mail, arg="cy") == "charged+mailed"
    assert rt.invocation(rt.invocations().id.iloc[0]).errors == []
    assert await rt.service_call(nap) == "rested"
    assert await rt.service_call(nap) == "rested"
    assert [len(rt.invocation(i).errors) for i in rt.invocations().id[1:]] == [1, 0]
    with pytest.raises(ValueError, match="times must be >= 1"):
        rt.faults.fail_run("x", times=0)
    with pytest.raises(TypeError, match="target must be"):
        rt.faults.crash_after(42, entry=1)
