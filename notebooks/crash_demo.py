"""The shop workflow of lesson 08 as a program of its own, so that a notebook can run it in a second process,
kill that process with SIGKILL, and resume its work from the store file.

    python crash_demo.py STORE.sqlite    # starts order-2, prints a line once it sleeps, then idles

What reached the outside world goes to STORE.sqlite.effects, one line per effect: a file outlives a process.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

import restate

import playground as pg

EFFECTS = "effects.log"  # set to STORE.sqlite.effects by whoever runs the shop

shop = restate.Workflow("Shop")


def effect(line: str) -> str:
    with open(EFFECTS, "a") as f:
        f.write(line + "\n")
    return line


@shop.main()
async def order(ctx: restate.WorkflowContext, item: str) -> str:
    await ctx.run_typed("charge card", effect, line=f"charged the card for {item}")
    await ctx.sleep(timedelta(days=2))  # the parcel service picks up in two days
    await ctx.run_typed("ship", effect, line=f"shipped {item}")
    return f"{item}: charged and shipped"


async def main(store: str) -> None:
    rt = pg.Runtime(shop, store=store)
    await rt.workflow_send(order, key="order-2", arg="lamp")
    await rt.settle()  # charged; now asleep for two (virtual) days
    print("process", sys.argv[0], "charged the card and is asleep in ctx.sleep", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    EFFECTS = sys.argv[1] + ".effects"
    asyncio.run(main(sys.argv[1]))
