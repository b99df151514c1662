"""Widgets are thin views: they build, show the runtime's state, refresh live, and their buttons act."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import ipywidgets
import restate

import playground as pg
from playground import widgets

obj = restate.VirtualObject("WObj")


@obj.handler()
async def step(ctx: restate.ObjectContext, path: list) -> str:
    await ctx.sleep(timedelta(minutes=1))
    if not path:
        return ctx.key()
    nxt, *rest = path
    return await ctx.object_call(step, key=nxt, arg=rest)


async def test_the_dashboard_shows_every_view_and_updates_live_while_handlers_run() -> None:
    rt = pg.Runtime(obj)
    dash = rt.dashboard()
    assert [dash.tabs.get_title(i) for i in range(len(dash.tabs.children))] == [
        "Invocations", "Call graph", "Timeline", "Deadlocks"]
    h = await rt.object_send(step, key="a", arg=["b"])
    await asyncio.sleep(widgets.REFRESH_S * 2)  # the live refresh runs on the loop's timer
    assert h.invocation_id in dash.invocations.html.value and "running" in dash.invocations.html.value
    assert "2026-01-01T00:00:00" in dash.clock.label.value
    await rt.attach(h.invocation_id)
    await asyncio.sleep(widgets.REFRESH_S * 2)
    assert "2026-01-01T00:02:00" in dash.clock.label.value
    assert dash.timeline is not None and dash.timeline.widget.lanes == 2  # keys a and b
    assert dash.calls.html.value.count("WObj/") >= 2
    dash.invocations.picker.value = h.invocation_id  # choosing an invocation opens its journal
    assert "Command: Call" in dash.journal.html.value and "journal of" in dash.journal.html.value
    assert "no deadlocks" in dash.deadlocks.box.children[0].value


async def test_the_clock_buttons_advance_and_settle_without_blocking() -> None:
    rt = pg.Runtime(obj)
    view = widgets.ClockView(rt)
    start = rt.now
    plus_hour = view.widget.children[2]
    assert plus_hour.description == "+1 h"
    plus_hour.click()  # schedules a task and returns at once
    assert rt.now == start
    await asyncio.sleep(0.05)
    assert rt.now == start + timedelta(hours=1)
    real = pg.Runtime(clock="real")
    real_view = widgets.ClockView(real)
    real_view.widget.children[1].click()
    await asyncio.sleep(0.05)
    assert "ValueError" in real_view.status.value  # errors show in the widget, not as a crash


async def test_the_deadlock_view_offers_cancel_and_kill_per_member_and_they_work() -> None:
    rt = pg.Runtime(obj)
    await rt.object_send(step, key="x", arg=["y", "x"])
    await rt.advance(timedelta(minutes=5))
    view = widgets.DeadlockView(rt)
    buttons = [c for row in view.box.children[1:] for c in row.children if isinstance(c, ipywidgets.Button)]
    assert len(buttons) == 6  # cancel and kill for each of the three members
    assert "<svg" in view.box.children[0].value or "digraph deadlock" in view.box.children[0].value
    kill_root = next(b for b in buttons if b.description.startswith("kill"))
    kill_root.click()
    await rt.settle()
    assert rt.deadlocks() == []
    assert "no deadlocks" in view.box.children[0].value


async def test_rich_html_for_the_runtime_an_invocation_and_a_journal() -> None:
    rt = pg.Runtime(obj)
    await rt.object_call(step, key="a", arg=["b"])
    html = rt._repr_html_()
    assert "virtual clock" in html and "WObj/a/step" in html and "completed" in html
    root = rt.invocations().id.iloc[0]
    inv_html = rt.invocation(root)._repr_html_()
    assert inv_html.count("<tr>") >= 6 and "<details>" in inv_html  # the callee's journal nested
    assert "WObj/b/step" in inv_html
    assert "<table" in rt.journal(root)._repr_html_()
