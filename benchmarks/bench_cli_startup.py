"""CLI start-up: `rfdetr-trainer --help` vs `rfdetr --help` (rfdetr's own CLI), wall time and peak memory.

    python benchmarks/bench_cli_startup.py [--repeat 5]

Each command runs in a fresh process; wall time is the best and median of N runs, peak memory is the child's
max RSS (ru_maxrss). Goal: rfdetr-trainer --help under 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def measure(argv: list[str], repeat: int) -> tuple[float, float, float, int]:
    walls, peaks = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        # ru_maxrss of children is a running max; a fresh process per command keeps it honest
        peaks.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss or before)
    return min(walls), statistics.median(walls), max(peaks) / 1024, proc.returncode


def run_isolated(argv: list[str], repeat: int) -> tuple[float, float, float, int]:
    """Measure in a child interpreter so the max-RSS figure belongs to this command alone."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_cli_startup as b; "
            f"print(*b.measure({argv!r}, {repeat}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    best, median, peak, rc = out.stdout.split()
    return float(best), float(median), float(peak), int(rc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env_note = f"{os.cpu_count()} cores, python {sys.version.split()[0]}"
    rows = [
        ("rfdetr-trainer --help", [str(BIN / "rfdetr-trainer"), "--help"]),
        ("rfdetr-trainer train --help", [str(BIN / "rfdetr-trainer"), "train", "--help"]),
        ("rfdetr --help (anchor)", [str(BIN / "rfdetr") if (BIN / "rfdetr").exists() else
                                    (shutil.which("rfdetr") or "rfdetr"), "--help"]),
    ]
    print(f"CLI start-up, {args.repeat} runs each ({env_note})")
    print(f"{'command':32} {'best s':>8} {'median s':>9} {'peak MB':>8} {'rc':>3}")
    results = {}
    for name, argv in rows:
        best, median, peak, rc = run_isolated(argv, args.repeat)
        results[name] = median
        print(f"{name:32} {best:8.3f} {median:9.3f} {peak:8.1f} {rc:3d}")
    ratio = results["rfdetr --help (anchor)"] / results["rfdetr-trainer --help"]
    print(f"rfdetr-trainer --help is {ratio:.1f}x faster than rfdetr --help (median); goal < 0.3 s: "
          f"{'met' if results['rfdetr-trainer --help'] < 0.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
