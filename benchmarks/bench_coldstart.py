"""Cold start, run by hand: `python benchmarks/bench_coldstart.py [--rounds 30]`.

Target: `import playground` costs at most 1.2x `import restate` (the SDK every playground user imports
anyway). Each round starts two fresh interpreters, one per statement, in alternating order; the verdict is the
median of the per-round ratios of CPU time (process start to exit, interpreter start-up included; CPU time
rather than wall time, which a shared machine blurs). Also shows what `import playground` imports beyond the
SDK, from `python -X importtime`."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
# A user's interpreter caches bytecode; without the cache every run would compile playground's sources.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
STATEMENTS = {"restate": "import restate", "playground": "import playground"}
# Loaded on first use, never by `import playground`: drawing, tables, widgets, the real server's HTTP stack.
LAZY = ("graphviz", "pandas", "IPython", "ipywidgets", "anywidget", "playground.render", "playground.widgets",
        "playground.introspect", "playground.real", "google.protobuf.descriptor_pb2", "sqlite3")


def cpu(statement: str) -> float:
    """CPU seconds (user + system) a fresh interpreter spends to run `statement` and exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", statement], check=True, cwd=_ROOT, env=ENV)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def rounds(n: int) -> dict[str, list[float]]:
    """n paired rounds, alternating which statement runs first."""
    out: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for i in range(n):
        order = list(STATEMENTS) if i % 2 == 0 else list(reversed(STATEMENTS))
        for name in order:
            out[name].append(cpu(STATEMENTS[name]))
    return out


def loaded_eagerly() -> list[str]:
    """Which of LAZY `import playground` loads (should be none)."""
    probe = f"import sys, playground; print(' '.join(m for m in {LAZY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, cwd=_ROOT, env=ENV, capture_output=True, text=True)
    return out.stdout.split()


def importtime_top(k: int = 12) -> list[tuple[str, int]]:
    """The k costliest modules (own time, µs) `import playground` imports beyond `import restate`."""
    def tree(statement: str) -> dict[str, int]:
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], check=True, cwd=_ROOT, env=ENV,
                             capture_output=True, text=True).stderr
        rows = {}
        for line in err.splitlines()[1:]:  # "import time: self | cumulative | name"
            self_us, _, name = line.removeprefix("import time:").split("|")
            rows[name.strip()] = int(self_us)
        return rows
    base, ours = tree("import restate"), tree("import playground")
    extra = {name: us for name, us in ours.items() if name not in base}
    return sorted(extra.items(), key=lambda kv: -kv[1])[:k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    cpu("import playground")  # warm the OS file cache and the bytecode caches
    cpu("import restate")
    times = rounds(args.rounds)
    ratios = [p / r for p, r in zip(times["playground"], times["restate"], strict=True)]
    print(f"{args.rounds} alternating rounds, CPU time of a fresh `python -c`:")
    for name, ts in times.items():
        print(f"  {STATEMENTS[name]:<18} median {statistics.median(ts) * 1e3:7.1f} ms")
    print(f"  ratio playground / restate: median {statistics.median(ratios):.2f}x "
          f"(quartiles {statistics.quantiles(ratios, n=4)[0]:.2f}-{statistics.quantiles(ratios, n=4)[2]:.2f}); "
          f"target at most 1.20x")
    eager = loaded_eagerly()
    print(f"  drawing, tables, widgets or SQLite loaded by `import playground`: {' '.join(eager) or 'none'}")
    print("  costliest imports beyond the SDK's (own time, one -X importtime run):")
    for name, us in importtime_top():
        print(f"    {us / 1e3:6.1f} ms  {name}")


if __name__ == "__main__":
    main()
