"""Training throughput against its ceiling: compute-bound limit, rfdetr's own ``train()``, ``rfdetr-trainer train``.

    python benchmarks/bench_train_throughput.py                  # CPU, tiny settings (see --help)
    python benchmarks/bench_train_throughput.py --device cuda --images 640 --batch 16 --res 384 --epochs 3
    python benchmarks/bench_train_throughput.py --only pipeline  # the data pipeline alone, --cache ram vs none

Two parts, each side in a fresh process, sides alternating round by round so machine drift hits all alike:

pipeline
    rfdetr's train data loader for Nano at 384 px over 1280x720 JPEGs, with rfdetr's real train transforms and the
    loader settings ``rfdetr-trainer train`` passes (workers from the CPU count, persistent): images/s over epochs
    >= 2, with ``--cache ram`` (the project's image cache, installed as its Lightning callback installs it) and
    without. Goal: ram >= 3x none.
train
    (a) ``limit``: rfdetr's ``train()`` with the same model, batch, resolution and precision, but its train loader
        replaced by one epoch of batches collected beforehand and already on the device: no decoding, no
        augmentation, no host-to-device copy; the compute-bound ceiling of this trainer.
    (b) ``rfdetr``: ``RFDETRNano(pretrain_weights=None).train()`` with rfdetr's defaults.
    (c) ``ours``: the project's train service with the tool's defaults (image cache, loader defaults, kornia on a
        GPU when installed); ``ours-nocache`` is (c) with ``--cache none``; ``--compile`` adds ``ours-compile``.
    All four are timed by one identical Lightning callback over the training batches of every epoch after the
    first (so warm-up and compilation are excluded; CUDA synchronised at both ends); validation is not timed.
    Prints images/s of each and the ratios (c)/(a) (goal >= 0.8 on a GPU) and (c)/(b) (goal >= 1.5 on a GPU).

The last stdout line is a JSON summary of every run. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMER: dict[str, float] = {"seconds": 0.0, "batches": 0}


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def attach_timer() -> None:
    """Append the same step timer to every trainer rfdetr builds (all sides alike)."""
    import rfdetr.training as rt
    from pytorch_lightning import Callback

    class StepTimer(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch >= 1:
                _sync()
                self.start, self.batches = time.perf_counter(), 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch >= 1:
                self.batches += 1

        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch >= 1:
                _sync()
                TIMER["seconds"] += time.perf_counter() - self.start
                TIMER["batches"] += self.batches

    original = rt.build_trainer

    def build_trainer(*args, **kwargs):
        trainer = original(*args, **kwargs)
        trainer.callbacks.append(StepTimer())
        return trainer

    rt.build_trainer = build_trainer


def replay_on_device() -> None:
    """Make rfdetr's datamodule serve one pre-collected epoch of device-resident batches (side ``limit``)."""
    import rfdetr.training as rt

    base = rt.RFDETRDataModule

    class Replay:
        def __init__(self, batches: list) -> None:
            self.batches = batches

        def __iter__(self):
            return iter(self.batches)

        def __len__(self) -> int:
            return len(self.batches)

    class DeviceBatches(base):  # type: ignore[misc, valid-type]
        def train_dataloader(self):  # noqa: D102
            device = self.trainer.strategy.root_device
            batches = [self.transfer_batch_to_device(b, device, 0) for b in super().train_dataloader()]
            _sync()
            return Replay(batches)

    rt.RFDETRDataModule = DeviceBatches


def run_side(side: str, data: Path, out: Path, args: argparse.Namespace) -> dict:
    warnings.simplefilter("ignore")
    attach_timer()
    amp = args.device.startswith("cuda")
    common = dict(epochs=args.epochs, batch_size=args.batch, grad_accum_steps=1, seed=7, checkpoint_interval=1000)
    start = time.perf_counter()
    if side in ("limit", "rfdetr"):
        if side == "limit":
            replay_on_device()
        from rfdetr import RFDETRNano

        model = RFDETRNano(pretrain_weights=None, resolution=args.res, device=args.device)
        model.train(dataset_dir=str(data), output_dir=str(out), device=args.device,
                    amp_dtype="auto" if amp else None, **common)
    else:
        from rfdetr_trainer.pipeline.context import RunPaths
        from rfdetr_trainer.schemas import ModelConfig, TrainingConfig
        from rfdetr_trainer.services.train import train

        extra = {"cache": "none"} if side == "ours-nocache" else {"compile": True} if side == "ours-compile" else {}
        training = TrainingConfig(resolution=args.res, device=args.device, **common, **extra)
        train(ModelConfig(model_type="nano", pretrain_weights=None), training, data, RunPaths(out),
              tensorboard=True, show_progress=False, validate=False)
    wall = time.perf_counter() - start
    rate = TIMER["batches"] * args.batch / TIMER["seconds"] if TIMER["seconds"] else 0.0
    return {"part": "train", "side": side, "images_per_s": round(rate, 3), "steady_batches": TIMER["batches"],
            "wall_s": round(wall, 2)}


def run_pipeline(mode: str, data: Path, args: argparse.Namespace) -> dict:
    """Iterate rfdetr's train loader (real transforms, the tool's loader settings) for ``--pipeline-epochs``."""
    warnings.simplefilter("ignore")
    from rfdetr import RFDETRNano
    from rfdetr.training import RFDETRDataModule

    from rfdetr_trainer.integrations.rfdetr import image_cache
    from rfdetr_trainer.integrations.rfdetr.throughput import loader_kwargs
    from rfdetr_trainer.schemas import TrainingConfig

    training = TrainingConfig(resolution=384, device="cpu", batch_size=args.batch, cache=mode)
    kwargs = loader_kwargs(training)
    model = RFDETRNano(pretrain_weights=None, resolution=384, device="cpu")
    config = model.get_train_config(dataset_dir=str(data), output_dir=str(data / "_out"), batch_size=args.batch,
                                    grad_accum_steps=1, **kwargs)
    datamodule = RFDETRDataModule(model.model_config, config)
    datamodule.setup("fit")
    fill_s = 0.0
    if mode != "none":
        # What the project's cache callback does in its setup hook, before any loader worker starts.
        started = time.perf_counter()
        train_split = [s for s in image_cache.fit_splits(datamodule) if s.name == "train"]
        image_cache.build(train_split, mode=mode, max_bytes=image_cache.memory_budget(training.cache_max_gb),
                          cache_dir=data / "_cache")
        fill_s = time.perf_counter() - started
    loader = datamodule.train_dataloader()
    epochs = []
    for _ in range(args.pipeline_epochs):
        started, images = time.perf_counter(), 0
        for samples, _targets in loader:
            images += len(samples.tensors) if hasattr(samples, "tensors") else len(samples)
        epochs.append(images / (time.perf_counter() - started))
    later = epochs[1:] or epochs
    # The same per-sample work in this process, one thread as in a loader worker, timed in CPU seconds: on a
    # machine shared with other jobs the wall-clock figure above swings with their load, this one much less.
    import random

    import torch

    torch.set_num_threads(1)
    dataset = loader.dataset
    order = list(range(min(len(dataset), args.pipeline_images)))
    random.Random(0).shuffle(order)
    cpu_start = time.process_time()
    for index in order:
        dataset[index]
    cpu_rate = len(order) / max(1e-9, time.process_time() - cpu_start)
    return {"part": "pipeline", "side": f"cache-{mode}", "images_per_s": round(statistics.mean(later), 3),
            "epochs_images_per_s": [round(e, 2) for e in epochs], "fill_s": round(fill_s, 2),
            "cpu_images_per_s": round(cpu_rate, 2), "num_workers": kwargs["num_workers"]}


def make_data(folder: Path, n_train: int, width: int, height: int) -> Path:
    from rfdetr_trainer.synthetic import make_photo_dataset

    if (folder / "valid" / "_annotations.coco.json").is_file():
        return folder
    n_valid = max(2, n_train // 8)
    total = n_train + 2 * n_valid
    make_photo_dataset(folder, num_images=total, width=width, height=height, grain=6, seed=1,
                       splits={"train": n_train / total, "valid": n_valid / total, "test": n_valid / total})
    return folder


def _child(argv: list[str]) -> dict | None:
    proc = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    sys.stderr.write(f"side {argv[:2]} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}\n")
    return None


def _rate(rows: list[dict], part: str, side: str) -> float:
    values = [r["images_per_s"] for r in rows if r["part"] == part and r["side"] == side]
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--images", type=int, default=8, help="train images of the training part")
    parser.add_argument("--image-size", type=int, default=320, help="square px of the training part's JPEGs")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--res", type=int, default=224, help="training resolution of the training part")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the training part (>= 2)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="also time ours with --compile")
    parser.add_argument("--pipeline-images", type=int, default=48, help="1280x720 JPEGs of the pipeline part")
    parser.add_argument("--pipeline-epochs", type=int, default=3)
    parser.add_argument("--only", choices=["pipeline", "train"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench-train-throughput")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.side:  # one measurement, in this (fresh) process
        part, side = args.side.split(":")
        data = args.work / ("pipeline-data" if part == "pipeline" else "train-data")
        if part == "pipeline":
            row = run_pipeline(side, data, args)
        else:
            out = Path(tempfile.mkdtemp(prefix=f"{side}-", dir=args.work))
            try:
                row = run_side(side, data, out, args)
            finally:
                shutil.rmtree(out, ignore_errors=True)  # checkpoints
        print("RESULT " + json.dumps(row), flush=True)
        return 0

    args.work.mkdir(parents=True, exist_ok=True)
    passthrough = [a for a in sys.argv[1:]]
    rows: list[dict] = []
    if args.only in (None, "pipeline"):
        make_data(args.work / "pipeline-data", args.pipeline_images, 1280, 720)
        for r in range(args.rounds):
            for mode in ("none", "ram"):
                row = _child([*passthrough, "--side", f"pipeline:{mode}"])
                if row:
                    rows.append({**row, "round": r})
                    print(f"[pipeline round {r + 1}] cache {mode}: {row['images_per_s']:.1f} images/s "
                          f"(epochs {row['epochs_images_per_s']}), {row['cpu_images_per_s']:.1f} images per "
                          "CPU-second", file=sys.stderr)
        none, ram = _rate(rows, "pipeline", "cache-none"), _rate(rows, "pipeline", "cache-ram")
        cpu = {m: statistics.median([r["cpu_images_per_s"] for r in rows if r.get("side") == f"cache-{m}"] or [0])
               for m in ("none", "ram")}
        print(f"data pipeline (Nano 384 px, 1280x720 JPEGs, epochs >= 2): cache none {none:.1f} images/s, "
              f"cache ram {ram:.1f} images/s, ratio {ram / none:.2f} (goal >= 3); per CPU-second (one worker's "
              f"work): none {cpu['none']:.1f}, ram {cpu['ram']:.1f}, ratio {cpu['ram'] / max(cpu['none'], 1e-9):.2f}")
    if args.only in (None, "train"):
        make_data(args.work / "train-data", args.images, args.image_size, args.image_size)
        sides = ["limit", "rfdetr", "ours", "ours-nocache"] + (["ours-compile"] if args.compile else [])
        for r in range(args.rounds):
            for side in sides:
                row = _child([*passthrough, "--side", f"train:{side}"])
                if row:
                    rows.append({**row, "round": r})
                    print(f"[train round {r + 1}] {side}: {row['images_per_s']:.2f} images/s, wall {row['wall_s']} s",
                          file=sys.stderr)
        rate = {s: _rate(rows, "train", s) for s in sides}
        print(f"train ({args.device}, Nano {args.res} px, batch {args.batch}, steady state epochs >= 2): "
              + ", ".join(f"{s} {v:.2f}" for s, v in rate.items()) + " images/s")
        print(f"ratio ours/limit {rate['ours'] / rate['limit']:.3f} (goal >= 0.8 on GPU); "
              f"ours/rfdetr {rate['ours'] / rate['rfdetr']:.3f} (goal >= 1.5 on GPU); "
              f"ours/ours-nocache {rate['ours'] / rate['ours-nocache']:.3f}")
    print(json.dumps({"device": args.device, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
