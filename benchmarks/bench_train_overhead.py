"""Training overhead: `rfdetr-trainer train` vs rfdetr's own `RFDETRNano(...).train(...)`, same data/epochs/seed.

    python benchmarks/bench_train_overhead.py [--pairs 2] [--epochs 2] [--images 24]

Both run as fresh processes (imports included) on the same synthetic dataset, CPU, Nano from scratch at
resolution 224, alternating A/B so drift on a shared machine hits both. Prints each wall time and the ratio of
medians. Goal: <= 1.05.
"""

from __future__ import annotations

import argparse
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
            "--num-workers", "0"]


def theirs(data: Path, out: Path, epochs: int) -> list[str]:
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "from rfdetr import RFDETRNano\n"
        "m = RFDETRNano(pretrain_weights=None, resolution=224)\n"
        f"m.train(dataset_dir={str(data)!r}, output_dir={str(out / 'bench')!r}, epochs={epochs}, batch_size=4,"
        " grad_accum_steps=1, seed=7, device='cpu', num_workers=0)\n"
    )
    return [sys.executable, "-c", code]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"{argv[0]} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        data = make_dataset(Path(tmp) / "data", num_images=args.images, image_size=128, seed=1)
        a, b = [], []
        for i in range(args.pairs):
            for label, build, sink in (("rfdetr-trainer train", ours, a), ("RFDETRNano.train", theirs, b)):
                out = Path(tmp) / f"out-{label[:6]}-{i}"
                seconds = timed(build(data, out, args.epochs))
                sink.append(seconds)
                shutil.rmtree(out, ignore_errors=True)  # ~800 MB of checkpoints per run
                print(f"pair {i + 1}: {label:22} {seconds:7.2f} s", flush=True)
    ratio = statistics.median(a) / statistics.median(b)
    print(f"\n{args.images} images, {args.epochs} epochs, Nano @224 on CPU, {args.pairs} pairs")
    print(f"rfdetr-trainer train median {statistics.median(a):.2f} s | RFDETRNano.train median "
          f"{statistics.median(b):.2f} s | ratio {ratio:.3f} (goal <= 1.05: {'met' if ratio <= 1.05 else 'NOT met'})")


if __name__ == "__main__":
    main()
