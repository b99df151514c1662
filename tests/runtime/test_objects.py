"""Virtual objects: exclusive handlers one at a time per key in arrival order; shared handlers beside them; state."""

from __future__ import annotations

from datetime import timedelta

import restate

import playground as pg
from playground.protocol import messages

events: list[str] = []

box = restate.VirtualObject("Box")


@box.handler()
async def put(ctx: restate.ObjectContext, item: str) -> list:
    events.append(f"start {ctx.key()} {item}")
    await ctx.sleep(timedelta(minutes=1))
    items = (await ctx.get("items") or []) + [item]
    ctx.set("items", items)
    events.append(f"end {ctx.key()} {item}")
    return items


@box.handler(kind="shared")
async def peek(ctx: restate.ObjectSharedContext) -> list:
    events.append(f"peek {ctx.key()}")
    return await ctx.get("items") or []


@box.handler()
async def hold(ctx: restate.ObjectContext) -> None:
    events.append("hold start")
    await ctx.sleep(timedelta(hours=2))
    events.append("hold end")


@box.handler()
async def quick(ctx: restate.ObjectContext) -> str:
    events.append("quick")
    return "quick"


@box.handler()
async def ask_shared_self(ctx: restate.ObjectContext) -> list:
    return await ctx.object_call(peek, key=ctx.key(), arg=None)


orderer = restate.Service("Orderer")


@orderer.handler()
async def send_a_then_b(ctx: restate.Context, key: str) -> None:
    ctx.object_send(put, key=key, arg="A")
    ctx.object_send(put, key=key, arg="B")


@orderer.handler()
async def send_then_call(ctx: restate.Context, key: str) -> list:
    ctx.object_send(put, key=key, arg="sent-first")
    return await ctx.object_call(put, key=key, arg="called-second")


kv = restate.VirtualObject("KV")


@kv.handler()
async def script(ctx: restate.ObjectContext, steps: list) -> list:
    out = []
    for op, *args in steps:
        if op == "set":
            ctx.set(args[0], args[1])
        elif op == "get":
            out.append(await ctx.get(args[0]))
        elif op == "clear":
            ctx.clear(args[0])
        elif op == "clear_all":
            ctx.clear_all()
        elif op == "keys":
            out.append(sorted(await ctx.state_keys()))
    return out


lazy = restate.VirtualObject("LazyKV", enable_lazy_state=True)


@lazy.handler()
async def lazy_script(ctx: restate.ObjectContext, steps: list) -> list:
    return await script(ctx, steps)


def make() -> pg.Runtime:
    events.clear()
    return pg.Runtime(box, orderer, kv, lazy)


async def test_exclusive_calls_queue_in_arrival_order() -> None:
    rt = make()
    handles = [await rt.object_send(put, key="k", arg=x) for x in ["1", "2", "3"]]
    await rt.settle()
    df = rt.invocations().set_index("id")
    assert [df.loc[h.invocation_id].status for h in handles] == ["running", "pending", "pending"]
    assert df.loc[handles[1].invocation_id].inboxed_at == df.loc[handles[1].invocation_id].created_at
    await rt.advance(timedelta(minutes=3))
    assert events == ["start k 1", "end k 1", "start k 2", "end k 2", "start k 3", "end k 3"]
    assert rt.state("Box", "k") == {"items": ["1", "2", "3"]}
    starts = [rt.invocation(h.invocation_id).running_at for h in handles]
    assert starts == sorted(starts) and len(set(starts)) == 3  # one minute apart


async def test_other_keys_are_not_blocked() -> None:
    rt = make()
    await rt.object_send(put, key="a", arg="1")
    await rt.object_send(put, key="b", arg="1")
    await rt.settle()
    assert events == ["start a 1", "start b 1"]


async def test_two_sends_from_one_handler_run_in_the_order_issued() -> None:
    rt = make()
    await rt.service_call(send_a_then_b, arg="m")
    await rt.advance(timedelta(minutes=5))
    assert rt.state("Box", "m") == {"items": ["A", "B"]}


async def test_a_send_then_a_call_to_the_same_key_keep_their_order() -> None:
    rt = make()
    assert await rt.service_call(send_then_call, arg="n") == ["sent-first", "called-second"]


async def test_invocations_from_other_sources_may_interleave_between_two_sends() -> None:
    rt = make()
    # another source's invocation arrives between A and B: it is queued in arrival order
    await rt.object_send(put, key="i", arg="first")  # holds the key for a minute
    await rt.settle()
    await rt.service_call(send_a_then_b, arg="i")  # enqueues A then B
    await rt.object_send(put, key="i", arg="other")
    await rt.advance(timedelta(minutes=10))
    items = rt.state("Box", "i")["items"]
    assert items.index("A") < items.index("B")
    assert items == ["first", "A", "B", "other"]


async def test_shared_handlers_run_beside_the_exclusive_holder() -> None:
    rt = make()
    await rt.object_send(put, key="s", arg="x")
    await rt.settle()
    assert events == ["start s x"]
    # the exclusive put still holds the key, yet shared peeks run at once
    assert await rt.object_call(peek, key="s") == []
    assert events == ["start s x", "peek s"]
    assert rt.now == make().now  # no time had to pass
    await rt.advance(timedelta(minutes=1))
    assert await rt.object_call(peek, key="s") == ["x"]


async def test_an_exclusive_handler_blocked_in_a_sleep_keeps_the_key_locked() -> None:
    rt = make()
    await rt.object_send(hold, key="L")
    await rt.settle()
    q = await rt.object_send(quick, key="L")
    await rt.advance(timedelta(hours=1))
    assert rt.invocation(q.invocation_id).status == "pending"
    assert events == ["hold start"]
    assert await rt.attach(q.invocation_id) == "quick"  # skips to the end of the sleep
    assert events == ["hold start", "hold end", "quick"]
    assert rt.now == make().now + timedelta(hours=2)


async def test_an_exclusive_handler_calling_a_shared_handler_of_its_own_key_does_not_block() -> None:
    rt = make()
    assert await rt.object_call(ask_shared_self, key="self") == []


async def test_state_get_set_clear_clear_all_and_keys() -> None:
    steps = [["set", "a", 1], ["set", "b", {"x": [1, 2]}], ["get", "b"], ["keys"], ["clear", "a"], ["get", "a"],
             ["set", "c", "s"]]

    rt = make()
    assert await rt.object_call(script, key="k", arg=steps) == [{"x": [1, 2]}, ["a", "b"], None]
    assert rt.state("KV", "k") == {"b": {"x": [1, 2]}, "c": "s"}
    # a later invocation sees the stored state
    assert await rt.object_call(script, key="k", arg=[["keys"], ["get", "c"]]) == [["b", "c"], "s"]
    assert await rt.object_call(script, key="k", arg=[["clear_all"], ["keys"]]) == [[]]
    assert rt.state("KV", "k") == {}
    assert rt.state("KV", "other") == {}


async def test_lazy_state_is_fetched_from_the_runtime_on_demand() -> None:
    rt = make()
    await rt.object_call(lazy_script, key="z", arg=[["set", "a", 1], ["set", "b", 2]])
    out = await rt.object_call(lazy_script, key="z", arg=[["get", "a"], ["get", "nope"], ["keys"]])
    assert out == [1, None, ["a", "b"]]
    inv_id = rt.invocations().id.iloc[-1]
    kinds = list(rt.journal(inv_id).entry_type)
    assert "Command: GetLazyState" in kinds and "Notification: GetLazyState" in kinds
    assert "Notification: GetLazyStateKeys" in kinds


async def test_commands_are_journaled_as_the_sdk_sent_them_and_read_back_as_messages() -> None:
    rt = make()
    await rt.object_call(script, key="j", arg=[["set", "a", 1], ["get", "a"]])
    inv = rt.invocation(rt.invocations().id.iloc[-1])
    by_type = {e.entry_type: e for e in inv.journal}
    set_state, get_state = by_type["Command: SetState"], by_type["Command: GetEagerState"]
    assert (set_state.msg.key, set_state.msg.value.content) == (b"a", b"1")
    assert get_state.msg.key == b"a" and get_state.msg.value.content == b"1"
    # each stored frame decodes to the message it holds (what the next attempt would be replayed)
    for e in inv.journal:
        assert messages.parse(e.type_id, e.frame()[8:]) == e.msg
