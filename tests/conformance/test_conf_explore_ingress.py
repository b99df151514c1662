"""What the schedule explorer assumes of ingress requests (docs/explore.md), checked on both engines: sends a
client awaits one after the other (each answered 202 "Accepted" before the next is made) reach a key in the
order they were made. Requests in flight together have no order; that is not checkable by running once."""

from __future__ import annotations

import conformance_services as S
from conformance_targets import fresh, scenario


@scenario
async def test_ingress_sends_awaited_one_after_another_reach_a_key_in_the_order_they_were_accepted(t):
    lst = fresh("list")
    sent = [str(i) for i in range(12)]
    for value in sent:
        await t.send("ListObject", "append", value, key=lst)

    async def all_appended() -> list[str] | None:
        got = await t.call("ListObject", "get", key=lst)
        return got if len(got) == len(sent) else None

    assert await t.until(all_appended, "every append ran") == sent
    assert S.EVENTS[lst] == sent
