"""The three clocks: virtual (skips time when idle), manual (moves only by advance), real (wall clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import restate

import playground as pg

napper = restate.Service("Napper")


@napper.handler()
async def nap(ctx: restate.Context, ms: int) -> str:
    await ctx.sleep(timedelta(milliseconds=ms), name="nap")
    return "rested"


@napper.handler()
async def two_naps(ctx: restate.Context) -> list:
    first = ctx.sleep(timedelta(hours=3))
    second = ctx.sleep(timedelta(hours=1))
    await restate.gather(first, second)
    return ["both"]


async def test_the_virtual_clock_skips_a_long_sleep_when_nothing_else_can_run() -> None:
    rt = pg.Runtime(napper)
    assert rt.clock == "virtual" and rt.now == datetime(2026, 1, 1, tzinfo=UTC)
    assert await rt.service_call(nap, arg=5 * 3600 * 1000) == "rested"
    assert rt.now == datetime(2026, 1, 1, 5, tzinfo=UTC)
    j = rt.journal(rt.invocations().id.iloc[0])
    sleep = j[j.entry_type == "Command: Sleep"].iloc[0]
    assert sleep["name"] == "nap"
    assert sleep.sleep_wakeup_at.to_pydatetime() == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert j[j.entry_type == "Notification: Sleep"].appended_at.iloc[0] == sleep.sleep_wakeup_at


async def test_time_jumps_only_as_far_as_the_next_timer_each_time() -> None:
    rt = pg.Runtime(napper)
    assert await rt.service_call(two_naps) == ["both"]
    assert rt.now == datetime(2026, 1, 1, 3, tzinfo=UTC)
    j = rt.journal(rt.invocations().id.iloc[0])
    notes = j[j.entry_type == "Notification: Sleep"].appended_at.dt.hour.tolist()
    assert notes == [1, 3]


def test_a_custom_start_time_is_used() -> None:
    start = datetime(2030, 6, 1, 12, tzinfo=UTC)
    assert pg.Runtime(start=start).now == start
    with pytest.raises(ValueError, match="timezone-aware"):
        pg.Runtime(start=datetime(2030, 6, 1))


async def test_settle_does_not_move_time() -> None:
    rt = pg.Runtime(napper)
    h = await rt.service_send(nap, arg=1000)
    await rt.settle()
    assert rt.now == datetime(2026, 1, 1, tzinfo=UTC)
    assert rt.invocation(h.invocation_id).status == "running"
    with pytest.raises(pg.NotReady):
        rt.output(h.invocation_id)


async def test_a_manual_clock_raises_instead_of_waiting_on_a_timer() -> None:
    rt = pg.Runtime(napper, clock="manual")
    with pytest.raises(pg.StuckError) as ei:
        await rt.service_call(nap, arg=60_000)
    msg = str(ei.value)
    assert "clock is manual" in msg and "rt.advance" in msg and "2026-01-01T00:01:00" in msg
    inv_id = ei.value.invocation_id
    assert rt.invocation(inv_id).status == "running"  # left intact for inspection
    await rt.advance(timedelta(minutes=1))
    assert rt.output(inv_id) == "rested"


async def test_advance_rejects_negative_and_non_timedelta_values() -> None:
    rt = pg.Runtime(napper)
    with pytest.raises(ValueError, match="negative"):
        await rt.advance(timedelta(seconds=-1))
    with pytest.raises(TypeError, match="timedelta"):
        await rt.advance(5)  # type: ignore[arg-type]


async def test_the_real_clock_runs_timers_on_the_wall_clock() -> None:
    rt = pg.Runtime(napper, clock="real")
    before = datetime.now(UTC)
    assert await rt.service_call(nap, arg=30) == "rested"
    # (timers have millisecond resolution: the wake-up may come up to 1 ms before 30 ms have passed)
    assert datetime.now(UTC) - before >= timedelta(milliseconds=29)
    with pytest.raises(ValueError, match="real"):
        await rt.advance(timedelta(seconds=1))


def test_an_unknown_clock_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="'virtual', 'manual' or 'real'"):
        pg.Runtime(clock="fast")
