"""What the HTTP door costs: the same greet call from a cell, through the door, and through a real server.

Run by hand from the repository root (the real server and the CLI are installed from npm on first use):

    python benchmarks/bench_http.py            # n=300 sequential calls per row, median of --repeat runs
    python benchmarks/bench_http.py --n 100 --repeat 3 --no-real

Rows (wall clock, time.perf_counter; sequential, one client):
- cell: `await rt.service_call(greet)` (no HTTP);
- door: `POST /Greeter/greet` to `rt.serve_http()` with httpx over TCP (HTTP/1.1, keep-alive), the client
  on the same event loop as the door (as a notebook cell's client would be);
- real: the same request to restate-server 1.7.12 (urllib, keep-alive not used, as compare_real.py);
- CLI: `restate invocations list` against the door (a process start and five admin queries).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx
import restate

import playground as pg
from playground import real

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello, {name}!"


async def cell_and_door(n: int, cli: bool = True) -> tuple[float, float, float | None]:
    rt = pg.Runtime(greeter)
    t0 = time.perf_counter()
    for _ in range(n):
        await rt.service_call(greet, arg="x")
    cell = (time.perf_counter() - t0) / n
    async with rt.serve_http() as door:
        async with httpx.AsyncClient(base_url=door.ingress_url) as client:
            await client.post("/Greeter/greet", json="warm")
            t0 = time.perf_counter()
            for _ in range(n):
                resp = await client.post("/Greeter/greet", json="x")
                assert resp.status_code == 200
            door_s = (time.perf_counter() - t0) / n
        cli_s = None
        try:
            if not cli:
                raise real.RestateServerUnavailable("not asked for")
            real.find_cli_binary(install=True)
            t0 = time.perf_counter()
            result = await door.restate("invocations list")
            cli_s = time.perf_counter() - t0 if result.ok else None
        except real.RestateServerUnavailable:
            pass
    return cell, door_s, cli_s


def real_server(n: int) -> float:
    with real.RestateServer() as server, real.serve(greeter) as app:
        server.register(app.url)
        server.call("Greeter", "greet", "warm")
        t0 = time.perf_counter()
        for _ in range(n):
            server.call("Greeter", "greet", "x")
        return (time.perf_counter() - t0) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-real", action="store_true")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {"cell": [], "door": [], "real": [], "cli": []}
    for _ in range(args.repeat):
        cell, door_s, cli_s = asyncio.run(cell_and_door(args.n))
        rows["cell"].append(cell)
        rows["door"].append(door_s)
        if cli_s is not None:
            rows["cli"].append(cli_s)
        if not args.no_real:
            rows["real"].append(real_server(args.n))
    print(f"n={args.n}, median of {args.repeat} runs, {sys.version.split()[0]}")
    for name, values in rows.items():
        if values:
            unit = "per command" if name == "cli" else "per call"
            print(f"  {name:5s} {statistics.median(values) * 1e3:8.2f} ms {unit}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
