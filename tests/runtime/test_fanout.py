"""A wide fan-out from one handler: completions ready together reach the SDK together.

The SDK runs its progress loop (which walks every future the handler awaits) once per chunk of input. One
chunk per completion made `restate.gather` over N calls quadratic; the timings live in
benchmarks/bench_fanout.py, this checks the cause by counting those rounds.
"""

from __future__ import annotations

from typing import Any

import pytest
import restate
from restate.vm import VMWrapper

import playground as pg

leaf = restate.Service("FanTestLeaf")


@leaf.handler()
async def echo(ctx: restate.Context, i: int) -> int:
    return i


hub = restate.Service("FanTestHub")


@hub.handler()
async def fan_out(ctx: restate.Context, n: int) -> list:
    futures = [ctx.service_call(echo, arg=i) for i in range(n)]
    await restate.gather(*futures)
    return [await f for f in futures]


@pytest.fixture
def progress_rounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per VMWrapper.do_progress call (the playground's own wrapper is installed first)."""
    pg.Runtime(leaf)  # installs the playground's hooks, so this counter wraps them and not the other way round
    calls: list[int] = []
    inner = VMWrapper.do_progress

    def counted(self: VMWrapper, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return inner(self, *args, **kwargs)

    monkeypatch.setattr(VMWrapper, "do_progress", counted)
    return calls


@pytest.mark.parametrize("n", [50, 400])
async def test_a_gather_over_many_calls_costs_the_sdk_a_few_progress_rounds_whatever_its_width(
        n: int, progress_rounds: list[int]) -> None:
    rt = pg.Runtime(leaf, hub)
    assert await rt.service_call(fan_out, arg=n) == list(range(n))
    # the leaves never wait; the hub waits once for the call ids and the results, not once per message
    assert len(progress_rounds) <= 5


async def test_batched_completions_keep_their_order_and_every_result(progress_rounds: list[int]) -> None:
    rt = pg.Runtime(leaf, hub)
    out = await rt.service_call(fan_out, arg=30)
    inv_id = rt.invocations().query("target == 'FanTestHub/fan_out'").id.iloc[0]
    kinds = [e.type_id for e in rt.invocation(inv_id).journal]
    assert out == list(range(30))
    assert len(kinds) == 1 + 30 * 3 + 1  # Input, per call a Call and its two notifications, Output
