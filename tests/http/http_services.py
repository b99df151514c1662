"""Services the HTTP door's tests call (a Service, a Virtual Object, a Workflow, and ones that block)."""

from __future__ import annotations

from datetime import timedelta

import restate

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"hi {name}"


@greeter.handler()
async def nap(ctx: restate.Context, name: str) -> str:
    await ctx.sleep(timedelta(hours=1))
    return f"rested {name}"


@greeter.handler()
async def nothing(ctx: restate.Context) -> None:
    return None


@greeter.handler()
async def fail(ctx: restate.Context, code: int) -> str:
    raise restate.TerminalError("nope", code, metadata={"why": "test"})


@greeter.handler()
async def headers(ctx: restate.Context) -> dict:
    return dict(ctx.request().headers)


counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    total = (await ctx.get("total") or 0) + n
    ctx.set("total", total)
    return total


@counter.handler()
async def hop(ctx: restate.ObjectContext, depth: int) -> int:
    """Calls itself on its own key: a deadlock (the second call queues behind the first)."""
    return await ctx.object_call(hop, key=ctx.key(), arg=depth + 1)


waiter = restate.VirtualObject("Waiter")


@waiter.handler()
async def wait(ctx: restate.ObjectContext) -> str:
    """Waits on an awakeable whose id it keeps in its state under "id"."""
    name, promise = ctx.awakeable()
    ctx.set("id", name)
    return await promise


flow = restate.Workflow("Flow")


@flow.main()
async def run(ctx: restate.WorkflowContext, x: str) -> str:
    return f"ran {x}"


ALL = [greeter, counter, waiter, flow]
