"""Jupyter's interrupt button, in a real IPython kernel: it stops a handler that never awaits (which blocks the
kernel's loop) and reports a cancelled await with what goes on running; the kernel stays usable."""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the kernel is interrupted with SIGINT")

SETUP = """
import restate, playground as pg
from datetime import timedelta

svc = restate.Service("Spin")

@svc.handler()
async def spin(ctx: restate.Context) -> str:
    print("spinning", flush=True)
    while True:  # never awaits: the kernel's loop is blocked
        pass

held = restate.VirtualObject("Held")

@held.handler()
async def nap(ctx: restate.ObjectContext) -> str:
    print("napping", flush=True)
    await ctx.sleep(timedelta(seconds=30))
    return "rested"
"""


class Kernel:
    def __init__(self, km: Any, kc: Any) -> None:
        self.km, self.kc = km, kc

    def run(self, code: str, interrupt_after: str | None = None, timeout: float = 60) -> list[Any]:
        """Execute a cell; return its stream texts and (ename, evalue) errors. Interrupt the kernel once
        the cell has printed `interrupt_after`."""
        msg_id = self.kc.execute(code)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"the cell did not finish in {timeout} s; output so far: {out}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
                if interrupt_after is not None and interrupt_after in content["text"]:
                    time.sleep(0.3)
                    self.km.interrupt_kernel()
                    interrupt_after = None
            elif kind == "error":
                out.append((content["ename"], content["evalue"]))
            elif kind == "status" and content["execution_state"] == "idle":
                return out


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        k = Kernel(km, kc)
        assert k.run(SETUP) == []
        yield k
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_the_interrupt_button_stops_a_handler_that_never_awaits_and_pauses_it(kernel: Kernel) -> None:
    out = kernel.run("rt = pg.Runtime(svc)\nawait rt.service_call(spin)", interrupt_after="spinning")
    assert out[0].startswith("spinning\n")
    ename, evalue = out[-1]
    assert ename == "KeyboardInterrupt" and "stopped the handler of inv_" in evalue and "rt.resume(" in evalue
    after = kernel.run("inv = rt.invocation(rt.invocations().id.iloc[0])\n"
                       "print(inv.status, inv.attempts, [e.message for e in inv.errors])")
    assert "".join(after) == "paused 1 ['KeyboardInterrupt() raised in handler code']\n"


def test_the_interrupt_button_on_an_awaited_call_says_the_invocation_goes_on_holding_its_key(kernel: Kernel) -> None:
    out = kernel.run("rt = pg.Runtime(held, clock='real')\nawait rt.object_call(nap, key='k')",
                     interrupt_after="napping")
    ename, evalue = out[-1]
    assert ename == "CancelledError"
    assert evalue.startswith("object_call to Held/k/nap was cancelled, but invocation inv_")
    assert "keeps running, as on Restate" in evalue
    assert "keeps the lock on Held/k" in evalue and "await rt.attach(" in evalue and "rt.cancel(" in evalue
    after = kernel.run("inv_id = rt.invocations().id.iloc[0]\nprint(rt.invocation(inv_id).status)\n"
                       "rt.cancel(inv_id)\ntry:\n    await rt.attach(inv_id)\nexcept restate.TerminalError as e:\n"
                       "    print(e.status_code, e.message)")
    assert "".join(after) == "running\n409 cancelled\n"
