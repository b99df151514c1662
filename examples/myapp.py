"""The services of the README's "Moving to a real Restate server": the Counter from its first example, as
plain restate-sdk code that runs unchanged on the embedded runtime and on a real server.

    ./dev server                                   # a real Restate server on 127.0.0.1 (ingress 8080, admin 9070)
    ./dev serve examples.myapp:services            # serve these and register them
    curl -s localhost:8080/Counter/Mary/add --json 5
"""

from __future__ import annotations

import restate

counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    total = (await ctx.get("total") or 0) + n
    ctx.set("total", total)
    return total


@counter.handler(kind="shared")
async def get(ctx: restate.ObjectSharedContext) -> int:
    return await ctx.get("total") or 0


services = [counter]
