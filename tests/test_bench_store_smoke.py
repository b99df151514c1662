"""Keep benchmarks/bench_store.py working: every row with a tiny n. No timing assertions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_store.py"


@pytest.fixture(scope="module")
def bench_store():
    spec = importlib.util.spec_from_file_location("playground_bench_store", BENCH_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["playground_bench_store"] = module  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("playground_bench_store", None)


@pytest.mark.parametrize("key", ["trivial", "object", "set100", "s2s"])
async def test_every_store_row_runs_and_counts_its_commits(bench_store, key: str, tmp_path: Path) -> None:
    result = await bench_store.paired(bench_store.BY_KEY[key], n=3, rounds=2, warmup=2, directory=str(tmp_path))
    assert len(result.ratios) == 2 and all(r > 0 for r in result.ratios)
    # per call: the invocation is created, then it ends (see docs/store.md); a call between two services
    # also commits when the callee starts and when it ends
    assert result.commits == (4 if key == "s2s" else 2)
    assert result.row.label in bench_store.format_table([result])
