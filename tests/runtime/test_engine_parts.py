"""The engine's parts on their own: clocks behind one interface, and the command dispatch table."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

import playground as pg
from playground.protocol import messages
from playground.runtime.clock import ManualClock, VirtualClock, WallClock, make_clock
from playground.runtime.commands import COMMAND_HANDLERS
from playground.runtime.common import AttemptFailed

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
START_MS = int(START.timestamp() * 1000)


def test_each_clock_kind_is_its_own_class_and_only_the_virtual_one_jumps_when_idle() -> None:
    virtual, manual, wall = make_clock("virtual", START), make_clock("manual", START), make_clock("real", START)
    assert (type(virtual), type(manual), type(wall)) == (VirtualClock, ManualClock, WallClock)
    assert virtual.jump_when_idle(START_MS + 5000) and virtual.now_ms() == START_MS + 5000
    assert not manual.jump_when_idle(START_MS + 5000) and manual.now_ms() == START_MS
    assert not wall.jump_when_idle(START_MS + 5000)
    assert [c.follows_wall_time for c in (virtual, manual, wall)] == [False, False, True]


def test_virtual_and_manual_clocks_only_move_forward_but_a_reset_may_go_back() -> None:
    clock = make_clock("manual", START)
    clock.set(START_MS + 10)
    clock.set(START_MS)
    assert clock.now_ms() == START_MS + 10
    clock.reset(START_MS)
    assert clock.now_ms() == START_MS


def test_the_wall_clock_cannot_be_moved_and_ignores_a_stored_time() -> None:
    wall = make_clock("real")
    with pytest.raises(ValueError, match=r"advance\(\) needs a virtual or manual clock"):
        wall.check_movable("advance()")
    with pytest.raises(ValueError, match="the real clock cannot be moved"):
        wall.set(0)
    wall.restore(0)
    assert wall.now_ms() > START_MS


def test_an_unknown_clock_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="clock must be 'virtual', 'manual' or 'real', not 'lunar'"):
        make_clock("lunar")


def test_the_dispatch_table_covers_every_command_of_the_protocol_but_input_output_and_run() -> None:
    commands = {name for name, type_id in messages.TYPE_IDS.items() if messages.is_command(type_id)}
    assert set(COMMAND_HANDLERS) == commands - {"Input", "Output", "Run"}


def test_a_command_the_runtime_does_not_know_fails_the_attempt_instead_of_passing() -> None:
    rt = pg.Runtime()
    with pytest.raises(AttemptFailed, match="does not handle the command Teleport"):
        rt._on_command(None, "Teleport", None)  # type: ignore[arg-type]
