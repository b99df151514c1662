"""Keep the benchmarks working: run every workload with a tiny n. No timing assertions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_runtime.py"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def bench():
    yield from _load(BENCH_PATH, "playground_bench_runtime")


@pytest.fixture(scope="module")
def bench_deadlock():
    yield from _load(BENCH_PATH.with_name("bench_deadlock.py"), "playground_bench_deadlock")


async def test_deadlock_benchmark_measures_overhead_and_finds_the_cycle(bench_deadlock) -> None:
    ratios = await bench_deadlock.overhead(rounds=2, n=5)
    assert len(ratios) == 2 and all(r > 0 for r in ratios)
    times = bench_deadlock.cycle_in_big_graph(waiting=100, trials=2)  # asserts the cycle is found inside
    assert len(times) == 2


# Every row of the benchmark table; test_every_workload_is_covered fails when a row is added or renamed.
KEYS = ["floor", "floor_task", "bare", "trivial", "scheduled", "concurrent", "floor_call", "call", "floor_object",
        "object", "run_async", "run_sync"]


@pytest.mark.parametrize("key", KEYS)
async def test_workload_reports_a_positive_rate(bench, key):
    result = await bench.measure(key, n=20, repeat=1, warmup=3)
    assert result.key == key
    assert result.n == 20
    assert len(result.seconds) == 1
    assert all(s > 0 for s in result.seconds)
    assert result.rate > 0
    assert result.us_median > 0


def test_every_workload_is_covered(bench):
    assert [w.key for w in bench.WORKLOADS] == KEYS


def test_table_and_verdict(bench, capsys):
    assert bench.main(["--n", "5", "--repeat", "1", "--warmup", "2", "--only", "floor", "bare", "trivial",
                       "--rounds", "1", "--pair-n", "3"]) == 0
    out = capsys.readouterr().out
    assert "bare driver" in out and "trivial ingress call" in out and "floor: greet" in out
    assert "trivial       runtime / floor =" in out and "runtime / bare driver =" in out
    assert "floor_task / floor =" in out and "runtime / floor_task =" in out and "no target" in out


@pytest.fixture(scope="module")
def bench_display():
    yield from _load(BENCH_PATH.with_name("bench_display.py"), "playground_bench_display")


async def test_display_benchmark_builds_and_times_every_view(bench_display) -> None:
    results = await bench_display.measure(entries=60, invocations=12)  # asserts the sizes inside
    assert len(results) == 6 and all(s >= 0 for s in results.values())


@pytest.fixture(scope="module")
def bench_fanout():
    yield from _load(BENCH_PATH.with_name("bench_fanout.py"), "playground_bench_fanout")


async def test_fanout_benchmark_times_a_gather_and_counts_the_sdk_progress_rounds(bench_fanout) -> None:
    result = await bench_fanout.measure(40, warmup=5)  # asserts the sum of the results inside
    assert result.n == 40 and result.seconds > 0
    assert 1 <= result.progress_calls <= 5 and result.progress_seconds >= 0


@pytest.fixture(scope="module")
def bench_explore():
    yield from _load(BENCH_PATH.with_name("bench_explore.py"), "playground_bench_explore")


async def test_explore_benchmark_covers_the_example_and_grows_its_scenario(bench_explore) -> None:
    wall, ex = await bench_explore.timed(bench_explore.example, "exhaustive", 10_000, 1)
    assert wall > 0 and ex.complete and len(ex.outcomes) == 3
    wall, ex = await bench_explore.timed(bench_explore.senders(2), "random", 5, 1)
    assert ex.schedules == 5 and all(len(o.value) == 5 for o in ex.outcomes)


@pytest.fixture(scope="module")
def bench_tables():
    yield from _load(BENCH_PATH.with_name("bench_tables.py"), "playground_bench_tables")


async def test_tables_benchmark_builds_the_runtime_and_times_every_table(bench_tables) -> None:
    results = await bench_tables.measure(invocations=30, entries=40, repeat=1)  # asserts the sizes inside
    assert len(results) == 4 and all(ms > 0 for ms in results.values())


@pytest.fixture(scope="module")
def bench_coldstart():
    yield from _load(BENCH_PATH.with_name("bench_coldstart.py"), "playground_bench_coldstart")


def test_coldstart_benchmark_times_both_imports_and_lists_what_loads_eagerly(bench_coldstart) -> None:
    times = bench_coldstart.rounds(1)
    assert set(times) == {"restate", "playground"} and all(t[0] > 0 for t in times.values())
    assert bench_coldstart.loaded_eagerly() == []


async def test_paired_ratios_cover_every_pair_with_a_positive_ratio(bench):
    ratios = await bench.paired_ratios(n=3, rounds=2, warmup=2)
    assert set(ratios) == {p.key for p in bench.PAIRS}
    assert all(len(rs) == 2 and all(r > 0 for r in rs) for rs in ratios.values())
    assert "trivial" in bench.format_pairs(ratios, 3)


@pytest.fixture(scope="module")
def bench_store():
    yield from _load(BENCH_PATH.with_name("bench_store.py"), "playground_bench_store")


@pytest.mark.parametrize("key", ["trivial", "object", "set100", "s2s"])
async def test_every_store_row_runs_and_counts_its_commits(bench_store, key: str, tmp_path: Path) -> None:
    result = await bench_store.paired(bench_store.BY_KEY[key], n=3, rounds=2, warmup=2, directory=str(tmp_path))
    assert len(result.ratios) == 2 and all(r > 0 for r in result.ratios)
    # per call: the invocation is created, then it ends (see docs/store.md); a call between two services
    # also commits when the callee starts and when it ends
    assert result.commits == (4 if key == "s2s" else 2)
    assert result.row.label in bench_store.format_table([result])


@pytest.fixture(scope="module")
def bench_scheduler():
    yield from _load(BENCH_PATH.with_name("bench_scheduler.py"), "playground_bench_scheduler")


@pytest.mark.parametrize("name", ["OldestFirst", "Stepwise"])
async def test_each_strategy_row_measures_both_sides_and_counts_the_events_it_held(bench_scheduler,
                                                                                    name: str) -> None:
    row = await bench_scheduler.paired(bench_scheduler.STRATEGIES[name], n=3, rounds=2, warmup=2)
    assert row["base_us"] > 0 and row["held_us"] > 0 and row["ratio"] > 0
    # a trivial call: its enqueue and start; Stepwise also its Output, End and the end of its stream
    assert row["events_per_call"] == {"OldestFirst": 2, "Stepwise": 5}[name]


def test_the_queue_alone_row_times_posting_and_draining(bench_scheduler) -> None:
    row = bench_scheduler.queue_alone(events=200)
    assert row["queued_us"] > 0 and row["at_once_us"] > 0
