"""The reliability suite (issue 16): bad data, bad use, faults and security cases replayed through
the real ``dcltal`` command on tiny synthetic data, each outcome classified.

    .venv/bin/python benchmarks/robustness/run.py [--quick] [--out DIR] [--jobs 2] [--only SUBSTRING]

Prints, per group, the cases tried, how many were clean and how many fell in each failure kind
(traceback, silent wrong result, data loss, code execution, crash), then one line per failing
case. Target: 0 in every failure column. A full run takes a few minutes on 2 cores; ``--quick``
(a subset, one kill point a command) under 2. Exit code: 0 when nothing failed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2] / "tests"))  # faults.py: the faults the tests make too

import cases_faults  # noqa: E402,F401  (registers its cases)
import cases_input  # noqa: E402,F401
import cases_security  # noqa: E402,F401
from harness import CLEAN, FAILURES, Outcome, Workspace  # noqa: E402
from registry import CASES, GROUPS  # noqa: E402


def _run_case(ws: Workspace, c) -> tuple:
    t0 = time.monotonic()
    try:
        outcome = c.run(ws)
    except Exception as e:  # a bug of the suite, not of dcltal: show it, count it apart
        outcome = Outcome("suite error", f"{type(e).__name__}: {e} {traceback.format_exc(limit=-1).strip()[-200:]}")
    return c, outcome, time.monotonic() - t0


def table(done: list) -> str:
    kinds = (CLEAN, *FAILURES)
    head = f"{'group':<10} {'tried':>5} " + " ".join(f"{k:>{max(len(k), 5)}}" for k in kinds)
    rows = [head, "-" * len(head)]
    for group in (*GROUPS, "total"):
        mine = [o for c, o, _ in done if group in ("total", c.group) and o.kind != "skipped"]
        counts = [sum(o.kind == k for o in mine) for k in kinds]
        rows.append(f"{group:<10} {len(mine):>5} " + " ".join(f"{n:>{max(len(k), 5)}}" for n, k in zip(counts, kinds)))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a subset of the cases (under 2 minutes)")
    ap.add_argument("--out", type=Path, help="keep the workspace here (default: a temporary folder, removed)")
    ap.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    ap.add_argument("--only", help="run only the cases whose name holds this")
    args = ap.parse_args(argv)
    chosen = [c for c in CASES if (c.quick or not args.quick) and (args.only is None or args.only in c.name)]
    with tempfile.TemporaryDirectory(prefix="dcltal-robustness-") as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        ws = Workspace(root.resolve(), args.quick)
        ws.setup()
        print(f"workspace ready in {time.monotonic() - t0:.0f} s: {root}; {len(chosen)} cases", flush=True)
        done = []
        with ThreadPoolExecutor(args.jobs) as pool:
            for c, outcome, seconds in pool.map(lambda c: _run_case(ws, c), chosen):
                done.append((c, outcome, seconds))
                print(f"  {outcome.kind:<20} {c.group:<9} {c.name} ({seconds:.0f} s)", flush=True)
        print()
        print(table(done))
        failing = [(c, o) for c, o, _ in done if o.kind not in (CLEAN, "skipped")]
        skipped = [(c, o) for c, o, _ in done if o.kind == "skipped"]
        if failing:
            print("\nfailing cases:")
            for c, o in failing:
                print(f"  [{o.kind}] {c.group}: {c.name}: {o.detail}")
        for c, o in skipped:
            print(f"  skipped: {c.name}: {o.detail}")
        print(f"\n{len(done)} cases in {time.monotonic() - t0:.0f} s")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
