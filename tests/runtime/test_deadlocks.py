"""Deadlock detection: a live wait-for graph, cycles found when the closing edge is added, and breaking them."""

from __future__ import annotations

from datetime import timedelta

import pytest
import restate

import playground as pg
from playground.runtime.waitfor import WaitForGraph

ran: list[str] = []

cyc = restate.VirtualObject("Cyc")


@cyc.handler()
async def hop(ctx: restate.ObjectContext, path: list) -> str:
    """Call the next key on the path (same handler); return the trail when the path ends."""
    ran.append(f"{ctx.key()}:{'/'.join(path)}")
    if not path:
        return ctx.key()
    nxt, *rest = path
    return ctx.key() + ">" + await ctx.object_call(hop, key=nxt, arg=rest)


@cyc.handler(kind="shared")
async def look(ctx: restate.ObjectSharedContext) -> str:
    return f"looked at {ctx.key()}"


@cyc.handler()
async def ask_shared(ctx: restate.ObjectContext) -> str:
    return await ctx.object_call(look, key=ctx.key(), arg=None)


@cyc.handler()
async def send_to_self(ctx: restate.ObjectContext) -> str:
    ctx.object_send(hop, key=ctx.key(), arg=[])
    return "sent"


@cyc.handler()
async def slow_then_call(ctx: restate.ObjectContext, other: str) -> str:
    await ctx.sleep(timedelta(minutes=1))
    return await ctx.object_call(hop, key=other, arg=[])


flaky_calls: list[int] = []


@cyc.handler()
async def fail_then_call_self(ctx: restate.ObjectContext) -> str:
    flaky_calls.append(1)
    if len(flaky_calls) == 1:
        raise RuntimeError("first attempt fails before calling")
    return await ctx.object_call(hop, key=ctx.key(), arg=[])


def make(mode: str = "normal") -> pg.Runtime:
    ran.clear()
    flaky_calls.clear()
    return pg.Runtime(cyc, mode=mode)


def _targets(err: pg.DeadlockError) -> list[str]:
    assert err.deadlock is not None
    return [m.target for m in err.deadlock.members]


async def test_an_object_calling_itself_on_its_key_is_a_cycle_of_one_object() -> None:
    rt = make()
    with pytest.raises(pg.DeadlockError) as ei:
        await rt.object_call(hop, key="A", arg=["A"])
    assert _targets(ei.value) == ["Cyc/A/hop", "Cyc/A/hop"]  # the root and its re-entrant call
    kinds = [k for _, _, k in ei.value.deadlock.edges]
    assert kinds == ["call", "queued", "holds"]
    msg = str(ei.value)
    assert "is queued for the lock on Cyc/A, held by" in msg and "rt.cancel(" in msg and "rt.kill(" in msg


async def test_a_cross_deadlock_between_two_objects_names_both() -> None:
    rt = make()
    with pytest.raises(pg.DeadlockError) as ei:
        await rt.object_call(hop, key="A", arg=["B", "A"])
    assert _targets(ei.value) == ["Cyc/A/hop", "Cyc/B/hop", "Cyc/A/hop"]
    root = rt.invocations().query("target == 'Cyc/A/hop' and invoked_by == 'ingress'").id.iloc[0]
    assert ei.value.deadlock.members[0].invocation_id == root  # listed from the root
    assert ei.value.invocation_id == root


async def test_a_three_object_cycle_is_found() -> None:
    rt = make()
    with pytest.raises(pg.DeadlockError) as ei:
        await rt.object_call(hop, key="A", arg=["B", "C", "A"])
    assert _targets(ei.value) == ["Cyc/A/hop", "Cyc/B/hop", "Cyc/C/hop", "Cyc/A/hop"]
    assert len(rt.deadlocks()) == 1 and rt.deadlocks()[0].invocation_ids == ei.value.deadlock.invocation_ids


async def test_a_cycle_formed_by_two_independent_requests_is_found() -> None:
    rt = make()
    a = await rt.object_send(slow_then_call, key="A", arg="B")  # holds A, later calls B
    b = await rt.object_send(slow_then_call, key="B", arg="A")  # holds B, later calls A
    await rt.settle()
    with pytest.raises(pg.DeadlockError) as ei:
        await rt.attach(a.invocation_id)  # skips the minute; the two calls then close the cycle
    members = set(ei.value.deadlock.invocation_ids)
    assert {a.invocation_id, b.invocation_id} <= members and len(members) == 4
    with pytest.raises(pg.DeadlockError):
        await rt.attach(b.invocation_id)


async def test_an_await_behind_a_cycle_raises_too_and_says_it_waits_on_one() -> None:
    rt = make()
    await rt.object_send(hop, key="A", arg=["A"])
    await rt.settle()
    with pytest.raises(pg.DeadlockError) as ei:
        await rt.object_call(hop, key="A", arg=[])  # queued behind the deadlocked root
    assert "waits on a deadlock" in str(ei.value)


async def test_near_misses_are_not_deadlocks() -> None:
    rt = make()
    assert await rt.object_call(ask_shared, key="S") == "looked at S"  # exclusive -> shared, same key
    assert await rt.object_call(hop, key="A", arg=["B", "C"]) == "A>B>C"  # different keys
    assert await rt.object_call(send_to_self, key="D") == "sent"  # a one-way send to itself
    await rt.settle()
    assert rt.deadlocks() == []
    assert "D:" in ran  # the send ran after the sender released the key


async def test_a_cycle_closed_by_a_retried_attempt_is_found() -> None:
    rt = make()
    with pytest.raises(pg.DeadlockError):
        await rt.object_call(fail_then_call_self, key="R")
    assert len(flaky_calls) == 2


async def test_a_cycle_closed_under_always_suspend_replay_is_found() -> None:
    rt = make("always_suspend")
    with pytest.raises(pg.DeadlockError) as ei:
        await rt.object_call(hop, key="A", arg=["B", "A"])
    assert len(ei.value.deadlock.members) == 3
    statuses = {m.status for m in ei.value.deadlock.members}
    assert "suspended" in statuses  # the callers suspended while waiting, and still hold their locks


async def _cross_deadlock() -> tuple[pg.Runtime, pg.SendHandle, pg.Deadlock]:
    """A/A calls B/B calls A/A again, started by a send: the root, and the standing cycle."""
    rt = make()
    root = await rt.object_send(hop, key="A", arg=["B", "A"])
    await rt.settle()
    (d,) = rt.deadlocks()
    return rt, root, d


async def test_cancelling_the_root_fails_it_and_lets_the_queued_reentrant_call_run() -> None:
    rt, root, d = await _cross_deadlock()
    inboxed = d.members[2].invocation_id
    rt.cancel(root.invocation_id)
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(root.invocation_id)
    assert (ei.value.status_code, ei.value.message) == (409, "cancelled")
    await rt.settle()
    assert rt.output(inboxed) == "A"  # the re-entrant call got the lock and ran
    b = d.members[1].invocation_id
    assert rt.invocation(b).completion_failure() == "[409] cancelled"  # the SDK forwarded the cancel
    assert rt.deadlocks() == []


async def test_killing_the_root_fails_the_whole_chain_with_killed() -> None:
    rt, root, d = await _cross_deadlock()
    rt.kill(root.invocation_id)
    await rt.settle()
    for m in d.members:
        assert rt.invocation(m.invocation_id).completion_failure() == "[409] killed"
    assert rt.deadlocks() == []
    assert await rt.object_call(hop, key="A", arg=[]) == "A"  # locks released


async def test_cancelling_the_inboxed_call_fails_its_callers_with_canceled() -> None:
    rt, root, d = await _cross_deadlock()
    inboxed = d.members[2].invocation_id
    rt.cancel(inboxed)
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(root.invocation_id)
    assert (ei.value.status_code, ei.value.message) == (409, "canceled")  # Restate's server spelling
    assert inboxed not in set(rt.invocations().id)  # cancelled before it started: gone, as in Restate
    assert rt.invocation(d.members[1].invocation_id).completion_failure() == "[409] canceled"


async def test_the_wait_for_graph_renders_with_the_cycle_in_red_and_never_raises() -> None:
    rt = make()
    await rt.object_send(hop, key="A", arg=["B", "A"])
    await rt.settle()
    dot = pg.render.wait_for_dot(rt)
    # B also holds its own lock and "style=dashed" in dot and "style=solid" in dot
    assert dot.count("->") == 5 and "lock Cyc/A" in dot and "lock Cyc/B" in dot
    assert dot.count('color="#d62728"') >= 4 + 3  # every cycle edge and invocation
    (d,) = rt.deadlocks()
    html = d.html()  # for the dashboard's widget
    assert ("<svg" in html) or ("digraph deadlock" in html)
    assert "Cyc/B/hop" in html
    for bundle in (d._repr_mimebundle_(), pg.render.wait_for_graph(rt)._repr_mimebundle_()):
        assert "text/html" not in bundle  # HTML-wrapped SVG shows as loose text in an untrusted notebook
        assert "Cyc/B/hop" in bundle["image/svg+xml"] and bundle["image/png"]


def test_rendering_falls_back_to_the_dot_source_without_any_renderer(monkeypatch) -> None:
    monkeypatch.setattr(pg.render, "_pure_renderer", lambda: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    html = pg.render.html('digraph { "a" -> "b" }')
    assert "<pre>" in html and "&quot;a&quot; -&gt; &quot;b&quot;" in html and "install graphviz" in html


def test_the_graph_finds_a_cycle_by_walking_only_the_closing_path() -> None:
    g = WaitForGraph()
    for i in range(10_000):  # 10,000 waiting invocations in short independent chains
        g.add(f"x{i}", f"x{i + 1}" if i % 10 else f"y{i}", "call")
    assert g.cycles() == []
    g.add("a", "b", "call")
    g.add("b", ("Cyc", "a"), "queued")
    cycle = g.add(("Cyc", "a"), "a", "holds")
    assert (cycle is not None and cycle.invocation_ids == ["b", "a"]) or cycle.invocation_ids == ["a", "b"]
    g.remove("a", "b")
    assert g.cycles() == []
