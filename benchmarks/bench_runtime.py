"""Throughput of the embedded runtime against the floor the SDK itself sets.

Run by hand from the repository root:

    python benchmarks/bench_runtime.py                 # n=2000 invocations per row, 3 repeats
    python benchmarks/bench_runtime.py --n 500 --repeat 5
    python benchmarks/bench_runtime.py --profile trivial   # cProfile one workload, runtime's own costs

Every row drives the real restate-sdk ASGI app in-process. Each repeat of each workload gets its own
`pg.Runtime(...)`, created inside the running loop, warmed up with ~100 invocations, then timed with
time.perf_counter. Rows report the median of the repeats (invocations/s and µs per invocation) and the
min–max range of µs per invocation.

The floors are the SDK's own cost with nothing of ours in between: its ASGI app awaited directly, fed
pre-built frames (Start and the Input encoded once), the request stream kept open until the SDK's End, and
only frame headers read back ("floor": greet; "floor_call": the caller's attempt plus the callee's, the
Call answered as Restate answers it: a pre-built CallInvocationIdCompletion at once, then a pre-built
CallCompletion; "floor_object": add with its state in Start). The "bare
driver" row is the earlier floor: greet driven through `playground.protocol.driver.Attempt`.

The verdicts are paired ratios: many short alternating rounds (the floor, then the runtime, for each pair
in turn) timed in CPU time, because single wall-clock rows on a shared machine drift by ±20%. Targets: the
trivial call at most 1.6x its floor, service-to-service and object get+set at most 2x theirs (and the
trivial call at most 1.5x the bare driver, the earlier target).

This file is imported by tests/test_benchmarks_smoke.py (with a tiny n): keep `measure()` and `WORKLOADS`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import gc
import os
import platform
import statistics
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Prefer the checkout this file lives in over whatever is installed.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import restate  # noqa: E402
from restate import Context, ObjectContext  # noqa: E402

import playground as pg  # noqa: E402
from playground.protocol import framing, messages  # noqa: E402
from playground.protocol.deployment import AsgiDeployment  # noqa: E402
from playground.protocol.driver import Attempt, AttemptEnded, Received, make_scope  # noqa: E402
from playground.runtime.scheduler import OldestFirst  # noqa: E402

DEFAULT_WARMUP = 100
CONCURRENCY = 50

# ---------------------------------------------------------------------------------------------- services

greeter = restate.Service("BenchGreeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return "Hello " + name


caller = restate.Service("BenchCaller")


@caller.handler()
async def call_greet(ctx: Context, name: str) -> str:
    return await ctx.service_call(greet, arg=name)


counter = restate.VirtualObject("BenchCounter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    value = (await ctx.get("value", type_hint=int) or 0) + delta
    ctx.set("value", value)
    return value


runner = restate.Service("BenchRunner")


async def _async_step() -> str:
    return "r"


def _sync_step() -> str:
    return "r"


@runner.handler()
async def run_async(ctx: Context, name: str) -> str:
    return await ctx.run_typed("r", _async_step)


@runner.handler()
async def run_sync(ctx: Context, name: str) -> str:
    return await ctx.run_typed("r", _sync_step)


# ---------------------------------------------------------------------------------------------- workloads
# A workload is `async (n, warmup) -> seconds`: it builds its own runtime inside the running loop, warms
# up, then times exactly n counted invocations.


def _timed_sequential(make_call: Callable[[], Awaitable[object]], check: Callable[[object], bool]) -> Callable:
    async def timed(n: int, warmup: int) -> float:
        for _ in range(warmup):
            await make_call()
        result = await make_call()
        if not check(result):
            raise AssertionError(f"unexpected result {result!r}")
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            await make_call()
        return time.perf_counter() - t0

    return timed


async def wl_trivial(n: int, warmup: int) -> float:
    rt = pg.Runtime(greeter)
    return await _timed_sequential(lambda: rt.service_call(greet, arg="x"), lambda r: r == "Hello x")(n, warmup)


async def wl_scheduled(n: int, warmup: int) -> float:
    """The trivial call with every event held in the scheduler's queue and drained by a strategy (the path a
    schedule explorer takes), against the default strategy that runs each event as it is posted."""
    rt = pg.Runtime(greeter)
    rt.scheduler.strategy = OldestFirst()
    return await _timed_sequential(lambda: rt.service_call(greet, arg="x"), lambda r: r == "Hello x")(n, warmup)


async def wl_service_to_service(n: int, warmup: int) -> float:
    rt = pg.Runtime(greeter, caller)
    return await _timed_sequential(lambda: rt.service_call(call_greet, arg="x"),
                                   lambda r: r == "Hello x")(n, warmup)


async def wl_object(n: int, warmup: int) -> float:
    rt = pg.Runtime(counter)
    return await _timed_sequential(lambda: rt.object_call(add, key="k", arg=1),
                                   lambda r: isinstance(r, int) and r > 0)(n, warmup)


async def wl_run_async(n: int, warmup: int) -> float:
    rt = pg.Runtime(runner)
    return await _timed_sequential(lambda: rt.service_call(run_async, arg="x"), lambda r: r == "r")(n, warmup)


async def wl_run_sync(n: int, warmup: int) -> float:
    rt = pg.Runtime(runner)
    return await _timed_sequential(lambda: rt.service_call(run_sync, arg="x"), lambda r: r == "r")(n, warmup)


async def wl_concurrent(n: int, warmup: int) -> float:
    rt = pg.Runtime(greeter)
    width = max(1, min(CONCURRENCY, n))

    async def batch(size: int) -> list[str]:
        return await asyncio.gather(*(rt.service_call(greet, arg="x") for _ in range(size)))

    done = 0
    while done < warmup:
        await batch(min(width, warmup - done))
        done += width
    if (await batch(1)) != ["Hello x"]:
        raise AssertionError("unexpected concurrent result")
    gc.collect()
    t0 = time.perf_counter()
    left = n
    while left > 0:
        size = min(width, left)
        results = await batch(size)
        if len(results) != size:
            raise AssertionError("lost results")
        left -= size
    return time.perf_counter() - t0


class BareGreet:
    """The floor: one greet invocation driven straight through the ASGI driver, no runtime."""

    def __init__(self) -> None:
        app = restate.app(services=[greeter])
        # Discover once on a worker thread first, as the runtime does, so the SDK never takes over SIGTERM.
        AsgiDeployment(app).discover()
        self.app = app
        self.start = messages.new("Start", id=b"\x01" * 16, debug_id="inv_1bench", random_seed=1)
        self.journal = [framing.encode(messages.new("Input", value=messages.new("Value", content=b'"x"')))]
        self.output_id = messages.TYPE_IDS["Output"]
        self.terminal_ids = {messages.TYPE_IDS[k] for k in ("End", "Suspension", "Error")}

    async def once(self) -> bytes:
        attempt = Attempt(self.app, "BenchGreeter", "greet")
        ended: asyncio.Future[AttemptEnded] = asyncio.get_running_loop().create_future()
        output: bytes | None = None
        terminal: str | None = None

        def on_message(item: Received) -> None:  # the driver pushes each message as the SDK sends it
            nonlocal output, terminal
            if item.type_id == self.output_id:
                output = item.msg.value.content
            elif item.type_id in self.terminal_ids:
                terminal = item.name
                attempt.close_input()

        attempt.on_message, attempt.on_end = on_message, ended.set_result
        attempt.start(self.start, self.journal)
        end = await ended
        if terminal != "End":
            raise AssertionError(f"bare greet ended with {terminal}")
        if end.error is not None or output is None:
            raise AssertionError(f"bare greet failed: {end.error!r}, output={output!r}")
        return output


async def wl_bare(n: int, warmup: int) -> float:
    bare = BareGreet()
    return await _timed_sequential(bare.once, lambda r: r == b'"Hello x"')(n, warmup)


# ---------------------------------------------------------------------------------------------- floors
# The SDK's own cost, with nothing of ours in between: its ASGI app awaited directly with a receive/send
# pair that hands it pre-built frames (Start and the journal encoded once) and keeps the request stream
# open until the SDK's End, reading back only the frame headers it must (no protobuf parsing).

_FRAME_HEADER = struct.Struct(">HHI")
_OUTPUT, _CALL, _CALL_COMPLETION = (messages.TYPE_IDS[k] for k in ("Output", "Call", "CallCompletion"))
_TERMINAL = {messages.TYPE_IDS[k] for k in ("End", "Suspension", "Error")}


def _discovered_app(*services: Any) -> Any:
    app = restate.app(services=list(services))
    AsgiDeployment(app).discover()  # on a worker thread first, as the runtime does (no SIGTERM takeover)
    return app


class Floor:
    """One invocation of `service/handler` on the SDK's app alone. `callee`: a floor run, and its result
    answered with a pre-built CallCompletion, whenever the SDK sends a Call (service-to-service).
    `own_task`: the app runs in a task of its own and `once` awaits a future its End resolves, as any
    runtime must do it when cancelling the caller's await may not cancel the invocation (the `floor_task`
    row: what that shape costs before any of an engine's own work)."""

    def __init__(self, app: Any, service: str, handler: str, start: Any, journal: list[Any],
                 callee: Floor | None = None, own_task: bool = False) -> None:
        self.app = app
        self.own_task = own_task
        self._task: asyncio.Task[None] | None = None  # (own_task: the last app task, winding down)
        self.scope = make_scope(service, handler)
        start.known_entries = len(journal)
        self.body = framing.encode(start) + b"".join(framing.encode(m) for m in journal)
        self.callee = callee
        self._completion: bytes | None = None  # the CallCompletion frame (its id read from the first Call)
        self._id_completion: bytes | None = None  # the CallInvocationIdCompletion frame (likewise)

    async def once(self) -> bytes:
        """Run one invocation; its Output payload (encoded, as the SDK sent it)."""
        loop = asyncio.get_running_loop()
        wakeup: list[asyncio.Future[str]] = [loop.create_future()]
        ended: asyncio.Future[None] = loop.create_future()
        outputs: list[bytes] = []
        first = True

        async def receive() -> dict:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": self.body, "more_body": True}
            what = await wakeup[0]
            wakeup[0] = loop.create_future()
            if what == "call":  # first the callee's id, as Restate sends it at once; its result on the next read
                assert self._id_completion is not None
                wakeup[0].set_result("result")
                return {"type": "http.request", "body": self._id_completion, "more_body": True}
            if what == "result":
                assert self.callee is not None and self._completion is not None
                # the callee's Output value (field 14) becomes the CallCompletion's value (field 5)
                value = b"\x2a" + (await self.callee.once())[1:]
                payload = self._completion + value
                frame = _FRAME_HEADER.pack(_CALL_COMPLETION, 0, len(payload)) + payload
                return {"type": "http.request", "body": frame, "more_body": True}
            if what == "end":
                return {"type": "http.request", "body": b"", "more_body": False}
            await loop.create_future()  # the SDK cancels its reader once the response is complete
            return {"type": "http.disconnect"}

        async def send(event: dict) -> None:
            data = event.get("body", b"")
            i = 0
            while i < len(data):
                type_id, _flags, length = _FRAME_HEADER.unpack_from(data, i)
                if type_id == _OUTPUT:
                    outputs.append(data[i + 8:i + 8 + length])
                elif type_id in _TERMINAL:  # End; Suspension or Error fail the check in once()
                    wakeup[0].set_result("end")
                    ended.set_result(None)
                elif type_id == _CALL:
                    if self._completion is None:
                        self._completion, self._id_completion = self._call_answers(data[i + 8:i + 8 + length])
                    wakeup[0].set_result("call")
                i += 8 + length

        if self.own_task:
            self._task = loop.create_task(self.app(self.scope, receive, send))
            await ended
        else:
            await self.app(self.scope, receive, send)
        if not outputs:
            raise AssertionError(f"the floor of {self.scope['path']} ended without an Output")
        return outputs[0]

    @staticmethod
    def _call_answers(call_payload: bytes) -> tuple[bytes, bytes]:
        """What answers this Call: the start of its CallCompletion payload (its completion id, field 1), and
        the whole CallInvocationIdCompletion frame (the callee's id), which Restate sends for every Call."""
        call = messages.parse(_CALL, call_payload)
        id_completion = messages.new("CallInvocationIdCompletion", completion_id=call.invocation_id_notification_idx,
                                     invocation_id="inv_1floorcallee")
        return (messages.new("CallCompletion", completion_id=call.result_completion_id).SerializeToString(),
                framing.encode(id_completion))


def _output_value(output: bytes) -> bytes:
    """The content of an Output payload's Value (field 14)."""
    msg = messages.parse(_OUTPUT, output)
    return msg.value.content


def _start(key: str = "", state: dict[str, bytes] | None = None) -> Any:
    start = messages.new("Start", id=b"\x01" * 16, debug_id="inv_1floor", random_seed=1, key=key)
    for k, v in (state or {}).items():
        start.state_map.add(key=k.encode(), value=v)
    return start


def _input(content: bytes) -> Any:
    return messages.new("Input", value=messages.new("Value", content=content))


def floor_trivial() -> Floor:
    return Floor(_discovered_app(greeter), "BenchGreeter", "greet", _start(), [_input(b'"x"')])


def floor_task() -> Floor:
    return Floor(_discovered_app(greeter), "BenchGreeter", "greet", _start(), [_input(b'"x"')], own_task=True)


def floor_call() -> Floor:
    callee = floor_trivial()
    return Floor(_discovered_app(caller), "BenchCaller", "call_greet", _start(), [_input(b'"x"')], callee=callee)


def floor_object() -> Floor:
    return Floor(_discovered_app(counter), "BenchCounter", "add", _start("k", {"value": b"1"}), [_input(b"1")])


def _floor_workload(make: Callable[[], Floor], expected: bytes) -> Callable[[int, int], Awaitable[float]]:
    async def run(n: int, warmup: int) -> float:
        floor = make()
        return await _timed_sequential(floor.once, lambda r: _output_value(r) == expected)(n, warmup)  # type: ignore[arg-type]

    return run


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    unit: str  # what one counted invocation is
    run: Callable[[int, int], Awaitable[float]]


WORKLOADS: list[Workload] = [
    Workload("floor", "floor: greet on the SDK's app alone", "inv", _floor_workload(floor_trivial, b'"Hello x"')),
    Workload("floor_task", "floor: greet's app in a task of its own", "inv",
             _floor_workload(floor_task, b'"Hello x"')),
    Workload("bare", "bare driver: greet via Attempt", "inv", wl_bare),
    Workload("trivial", "trivial ingress call: service_call(greet)", "inv", wl_trivial),
    Workload("scheduled", "trivial call, events queued (OldestFirst strategy)", "inv", wl_scheduled),
    Workload("concurrent", f"{CONCURRENCY} concurrent service_call(greet)", "inv", wl_concurrent),
    Workload("floor_call", "floor: caller -> greet on the SDK's apps", "caller",
             _floor_workload(floor_call, b'"Hello x"')),
    Workload("call", "service-to-service: caller -> greet", "caller", wl_service_to_service),
    Workload("floor_object", "floor: add on the SDK's app alone", "inv", _floor_workload(floor_object, b"2")),
    Workload("object", "object get+set: object_call(add)", "inv", wl_object),
    Workload("run_async", "ctx.run_typed, async closure", "inv", wl_run_async),
    Workload("run_sync", "ctx.run_typed, sync closure (thread pool)", "inv", wl_run_sync),
]
BY_KEY = {w.key: w for w in WORKLOADS}


# ---------------------------------------------------------------------------------------------- measuring


@dataclass
class Result:
    key: str
    label: str
    unit: str
    n: int
    seconds: list[float]  # one per repeat

    @property
    def us(self) -> list[float]:
        return [s / self.n * 1e6 for s in self.seconds]

    @property
    def us_median(self) -> float:
        return statistics.median(self.us)

    @property
    def rate(self) -> float:
        """Invocations (or callers) per second, from the median repeat."""
        return 1e6 / self.us_median


async def measure(workload: Workload | str, n: int, repeat: int = 1, warmup: int = DEFAULT_WARMUP) -> Result:
    """Run one workload `repeat` times (a fresh runtime each time) and collect its timings."""
    wl = BY_KEY[workload] if isinstance(workload, str) else workload
    if n < 1 or repeat < 1:
        raise ValueError("n and repeat must be at least 1")
    seconds = [await wl.run(n, warmup) for _ in range(repeat)]
    return Result(wl.key, wl.label, wl.unit, n, seconds)


async def measure_all(n: int, repeat: int, warmup: int = DEFAULT_WARMUP, keys: list[str] | None = None,
                      progress: Callable[[str], None] | None = None) -> list[Result]:
    results = []
    for wl in WORKLOADS:
        if keys is not None and wl.key not in keys:
            continue
        if progress:
            progress(wl.key)
        results.append(await measure(wl, n, repeat, warmup))
    return results


@dataclass(frozen=True)
class Pair:
    """A runtime workload and the floor it is held to: `target` is the highest allowed ratio."""

    key: str
    floor: Callable[[], Any]  # () -> an object with `async once()`
    call: Callable[[Any], Callable[[], Awaitable[object]]]  # runtime -> one call
    services: tuple[Any, ...]
    target: float | None  # None: shown for what it explains, held to nothing


PAIRS: list[Pair] = [
    Pair("trivial", floor_trivial, lambda rt: lambda: rt.service_call(greet, arg="x"), (greeter,), 1.6),
    Pair("call", floor_call, lambda rt: lambda: rt.service_call(call_greet, arg="x"), (greeter, caller), 2.0),
    Pair("object", floor_object, lambda rt: lambda: rt.object_call(add, key="k", arg=1), (counter,), 2.0),
    # the earlier floor, kept for comparison with older runs (its target was 1.5x)
    Pair("trivial/bare", BareGreet, lambda rt: lambda: rt.service_call(greet, arg="x"), (greeter,), 1.5),
    # what the shape costs (the app in a task of its own, its result awaited from another task), and the
    # runtime against that shape: its engine work alone
    Pair("task/floor", floor_trivial, lambda rt: floor_task().once, (), None),
    Pair("trivial/task", floor_task, lambda rt: lambda: rt.service_call(greet, arg="x"), (greeter,), None),
]


async def paired_ratios(n: int, rounds: int, warmup: int = DEFAULT_WARMUP,
                        keys: list[str] | None = None) -> dict[str, list[float]]:
    """Runtime / floor ratios of CPU time from many short alternating rounds (floor, then runtime, for each
    pair in turn), so drift (CPU clock, the VM being descheduled, heap growth) hits both sides alike; the
    median of each pair's ratios is its verdict figure."""
    pairs = [p for p in PAIRS if keys is None or p.key in keys]
    sides = [(p.floor().once, p.call(pg.Runtime(*p.services))) for p in pairs]

    async def cpu(call: Callable[[], Awaitable[object]], count: int) -> float:
        t0 = time.process_time()
        for _ in range(count):
            await call()
        return time.process_time() - t0

    for floor_once, runtime_call in sides:
        await cpu(floor_once, warmup)
        await cpu(runtime_call, warmup)
    ratios: dict[str, list[float]] = {p.key: [] for p in pairs}
    for _ in range(rounds):
        for p, (floor_once, runtime_call) in zip(pairs, sides, strict=True):
            f = await cpu(floor_once, n)
            t = await cpu(runtime_call, n)
            ratios[p.key].append(t / f)
    return ratios


async def paired_ratio(n: int, rounds: int, warmup: int = DEFAULT_WARMUP) -> list[float]:
    """The trivial call's ratios to its floor (see paired_ratios)."""
    return (await paired_ratios(n, rounds, warmup, ["trivial"]))["trivial"]


def format_pairs(ratios: dict[str, list[float]], n: int) -> str:
    lines = []
    for p in PAIRS:
        rs = ratios.get(p.key)
        if not rs:
            continue
        q = statistics.median(rs)
        quart = statistics.quantiles(rs, n=4) if len(rs) > 1 else [q, q, q]
        floor, side = {"trivial/bare": ("bare driver", "runtime"), "task/floor": ("floor", "floor_task"),
                       "trivial/task": ("floor_task", "runtime")}.get(p.key, ("floor", "runtime"))
        verdict = ("no target" if p.target is None else
                   f"target <= {p.target}x -> {'OK, within' if q <= p.target else 'ABOVE'} target")
        lines.append(f"  {p.key:<13} {side} / {floor} = {q:.2f}x (quartiles {quart[0]:.2f}-{quart[2]:.2f}x, "
                     f"{len(rs)} rounds of {n}); {verdict}")
    return "\n".join(lines)


FLOOR_OF = {"trivial": "floor", "concurrent": "floor", "scheduled": "floor", "call": "floor_call",
            "object": "floor_object"}


def format_table(results: list[Result]) -> str:
    by = {r.key: r for r in results}
    head = f"{'workload':<44} {'rate/s':>9} {'µs/inv':>8} {'µs min–max':>15} {'x floor':>8} {'x bare':>7}"
    lines = [head, "-" * len(head)]
    for r in results:
        unit = "callers/s" if r.unit == "caller" else ""
        floor = by.get(FLOOR_OF.get(r.key, r.key if r.key.startswith("floor") else ""))
        rel_floor = f"{r.us_median / floor.us_median:.2f}" if floor else ""
        rel = f"{r.us_median / by['bare'].us_median:.2f}" if "bare" in by else ""
        rng = f"{min(r.us):.0f}–{max(r.us):.0f}"
        lines.append(f"{r.label:<44} {r.rate:>9,.0f} {r.us_median:>8.0f} {rng:>15} {rel_floor:>8} {rel:>7}"
                     + (f"  ({unit})" if unit else ""))
    return "\n".join(lines)


def machine() -> str:
    return (f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs "
            f"(nproc {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}), "
            f"{platform.system()} {platform.machine()}, restate-sdk {_sdk_version()}, "
            f"{_dt.datetime.now().astimezone().isoformat(timespec='seconds')}")


def _sdk_version() -> str:
    try:
        from importlib.metadata import version
        return version("restate-sdk")
    except Exception:
        return "?"


# ---------------------------------------------------------------------------------------------- profiling


def profile(key: str, n: int, top: int = 25) -> None:
    """cProfile one workload and print the costs in the playground package (cumulative) and overall (own time)."""
    import cProfile
    import pstats

    wl = BY_KEY[key]
    prof = cProfile.Profile()

    async def go() -> None:
        prof.enable()
        await wl.run(n, DEFAULT_WARMUP)
        prof.disable()

    asyncio.run(go())
    stats = pstats.Stats(prof)
    pkg = str(_ROOT / "playground")
    rows = []
    for (file, line, func), (_cc, ncalls, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((file, line, func, ncalls, tt, ct))
    total = sum(r[4] for r in rows)
    per = 1e6 / (n + DEFAULT_WARMUP)
    print(f"cProfile of '{key}', n={n} (+{DEFAULT_WARMUP} warm-up); total own time {total:.2f} s "
          f"= {total * per:.0f} µs per invocation under the profiler\n")
    print("(for coroutines cProfile counts each resumption as a call, and 'cum' covers one step, not the whole await)")
    print("playground's own functions by cumulative time (µs per invocation):")
    mine = sorted((r for r in rows if r[0].startswith(pkg)), key=lambda r: -r[5])[:top]
    for file, line, func, ncalls, tt, ct in mine:
        rel = os.path.relpath(file, _ROOT)
        print(f"  {ct * per:8.1f} cum {tt * per:7.1f} own {ncalls / (n + DEFAULT_WARMUP):6.1f} calls/inv  "
              f"{rel}:{line}:{func}")
    print("\nall functions by own time (µs per invocation):")
    for file, line, func, ncalls, tt, ct in sorted(rows, key=lambda r: -r[4])[:top]:
        where = os.path.relpath(file, _ROOT) if file.startswith(str(_ROOT)) else file.split("site-packages/")[-1]
        print(f"  {tt * per:8.1f} own {ct * per:8.1f} cum {ncalls / (n + DEFAULT_WARMUP):6.1f} calls/inv  "
              f"{where}:{line}:{func}")


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="invocations per row and repeat (default 2000)")
    p.add_argument("--repeat", type=int, default=3, help="repeats per row; the median is reported (default 3)")
    p.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed invocations first (default 100)")
    p.add_argument("--only", nargs="+", choices=list(BY_KEY), help="run only these rows")
    p.add_argument("--profile", choices=list(BY_KEY), help="instead of the table, cProfile this workload")
    p.add_argument("--rounds", type=int, default=20, help="paired rounds per pair (default 20)")
    p.add_argument("--pair-n", type=int, default=300, help="calls per side of a paired round (default 300)")
    p.add_argument("--no-pairs", action="store_true", help="only the table, no paired rounds")
    args = p.parse_args(argv)

    if args.profile:
        profile(args.profile, args.n)
        return 0

    print(f"restate-playground runtime benchmark: n={args.n}, repeat={args.repeat}, warm-up={args.warmup}")
    print(machine())
    t0 = time.perf_counter()
    results = asyncio.run(measure_all(args.n, args.repeat, args.warmup, args.only,
                                      progress=lambda k: print(f"  running {k} ...", file=sys.stderr, flush=True)))
    print()
    print(format_table(results))
    print()
    if not args.no_pairs:
        ratios = asyncio.run(paired_ratios(args.pair_n, args.rounds, args.warmup))
        print(f"paired CPU-time rounds ({args.rounds} x {args.pair_n} calls, floor then runtime, pairs interleaved):")
        print(format_pairs(ratios, args.pair_n))
    print(f"(total wall time {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
