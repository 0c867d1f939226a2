"""Training overhead: `rfdetr-trainer train` vs rfdetr's own `RFDETRNano(...).train(...)`, same data/epochs/seed.

    python benchmarks/bench_train_overhead.py [--pairs 2] [--epochs 2] [--images 24]

Both run as fresh processes (imports included) on the same synthetic dataset, CPU, Nano from scratch at
resolution 224, alternating A/B so drift on a shared machine hits both. Ours runs with ``--no-final-eval``: by
default ``train`` also evaluates its best checkpoint on the valid split and writes report.html (issue 9), work
rfdetr's ``train()`` does not do, which would be counted as overhead of the seam. Prints each wall time and the ratio of
medians. Goal: <= 1.02 (issue 10: training through the public seam costs no more than rfdetr alone).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rfdetr_trainer.synthetic import make_dataset

BIN = Path(sys.executable).parent
COMMON = {"epochs": None, "batch_size": 4, "grad_accum_steps": 1, "resolution": 224, "seed": 7}


def ours(data: Path, out: Path, epochs: int) -> list[str]:
    return [str(BIN / "rfdetr-trainer"), "-q", "train", "--dataset-dir", str(data), "--output-dir", str(out),
            "--run-name", "bench", "--pretrain-weights", "none", "--epochs", str(epochs), "--batch-size", "4",
            "--grad-accum-steps", "1", "--resolution", "224", "--seed", "7", "--device", "cpu",
            "--num-workers", "0", "--no-final-eval"]


def theirs(data: Path, out: Path, epochs: int) -> list[str]:
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "from rfdetr import RFDETRNano\n"
        "m = RFDETRNano(pretrain_weights=None, resolution=224)\n"
        f"m.train(dataset_dir={str(data)!r}, output_dir={str(out / 'bench')!r}, epochs={epochs}, batch_size=4,"
        " grad_accum_steps=1, seed=7, device='cpu', num_workers=0)\n"
    )
    return [sys.executable, "-c", code]


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system of the child and its children) of one run.

    On a shared machine the wall time mostly measures the neighbours; the CPU time is what the run itself cost.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"{argv[0]} failed:\n{proc.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - start, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        data = make_dataset(Path(tmp) / "data", num_images=args.images, image_size=128, seed=1)
        a, b, a_cpu, b_cpu = [], [], [], []
        for i in range(args.pairs):
            for label, build, sink, cpu_sink in (("rfdetr-trainer train", ours, a, a_cpu),
                                                 ("RFDETRNano.train", theirs, b, b_cpu)):
                out = Path(tmp) / f"out-{label[:6]}-{i}"
                seconds, cpu = timed(build(data, out, args.epochs))
                sink.append(seconds)
                cpu_sink.append(cpu)
                shutil.rmtree(out, ignore_errors=True)  # ~800 MB of checkpoints per run
                print(f"pair {i + 1}: {label:22} {seconds:7.2f} s wall {cpu:7.2f} s CPU", flush=True)
    ratio = statistics.median(a) / statistics.median(b)
    cpu_ratio = statistics.median(a_cpu) / statistics.median(b_cpu)
    print(f"\n{args.images} images, {args.epochs} epochs, Nano @224 on CPU, {args.pairs} pairs")
    print(f"rfdetr-trainer train median {statistics.median(a):.2f} s | RFDETRNano.train median "
          f"{statistics.median(b):.2f} s | ratio {ratio:.3f} (goal <= 1.02: {'met' if ratio <= 1.02 else 'NOT met'})")
    print(f"CPU seconds: {statistics.median(a_cpu):.2f} | {statistics.median(b_cpu):.2f} | ratio {cpu_ratio:.3f}")


if __name__ == "__main__":
    main()
