"""The clock's range (differences.DIFFERENCES["clock_range"]): a sleep past year 9999 fails its attempt on the
embedded runtime, naming the limit, while a real server stores it and waits."""

from __future__ import annotations

import pytest

from conformance_targets import CallFailed, scenario


@scenario
async def test_a_sleep_past_the_clocks_range_fails_here_and_waits_there(t):
    sent = await t.send("FarFuture", "sleepPastTheClock")
    if t.name != "real":
        with pytest.raises(CallFailed) as err:
            await t.attach(sent.invocation_id)  # two attempts (its retry policy), then killed with the reason
        assert err.value.code == 500
        assert err.value.message.startswith("ctx.sleep would be due after 9999-12-31T23:59:59.999000+00:00")
        assert t.rt.now.year == 2026  # the clock did not move towards it
        return
    async def sleep_stored():
        return await t.query(f"SELECT entry_type FROM sys_journal WHERE id = '{sent.invocation_id}' "
                             f"AND entry_type = 'Command: Sleep'")
    await t.until(sleep_stored, "the Sleep command in sys_journal")
    assert await t.status(sent.invocation_id) not in ("completed", None)
    await t.kill(sent.invocation_id)  # don't leave it on the session's server
