"""Throughput of one training: rfdetr-trainer's train service vs rfdetr's own ``RFDETRNano.train``.

    python benchmarks/gpu_check.py make-data DIR          # synthetic dataset sized from the env below
    python benchmarks/gpu_check.py ours|theirs DIR OUT    # one timed training; prints one JSON line
    python benchmarks/gpu_check.py compare RESULTS.jsonl  # images/s of each and the ratio ours/theirs

Both trainings build Nano from scratch (no download) and train the same data, epochs, batch, resolution, seed
and AMP setting. Two figures per run: steady-state images/s, timed by one identical Lightning callback over the
training batches of every epoch after the first (CUDA synchronised at both ends; attached to both sides the same
way, by wrapping ``rfdetr.training.build_trainer``), and the wall time of model construction plus ``train``
(imports excluded), which also holds validation and checkpoint writing. Env: GPU_CHECK_STEPS
(optimiser steps per epoch, 40), GPU_CHECK_BATCH (16), GPU_CHECK_RES (384), GPU_CHECK_EPOCHS (2),
GPU_CHECK_DEVICE (cuda), GPU_CHECK_IMAGE (image px, 320), GPU_CHECK_WORKERS (4), GPU_CHECK_AMP (1).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path


def cfg() -> dict:
    env = os.environ.get
    steps, batch = int(env("GPU_CHECK_STEPS", "40")), int(env("GPU_CHECK_BATCH", "16"))
    return {"steps": steps, "batch": batch, "train_images": steps * batch,
            "resolution": int(env("GPU_CHECK_RES", "384")), "epochs": int(env("GPU_CHECK_EPOCHS", "2")),
            "device": env("GPU_CHECK_DEVICE", "cuda"), "image": int(env("GPU_CHECK_IMAGE", "320")),
            "workers": int(env("GPU_CHECK_WORKERS", "4")), "amp": env("GPU_CHECK_AMP", "1") == "1"}


def make_data(folder: Path) -> None:
    from rfdetr_trainer.synthetic import make_dataset

    c = cfg()
    valid = max(2, c["batch"] // 4)
    total = c["train_images"] + 2 * valid
    make_dataset(folder, num_images=total, image_size=c["image"], max_objects=4, seed=0,
                 splits={"train": c["train_images"] / total, "valid": valid / total, "test": valid / total})
    print(json.dumps({"dataset": str(folder), **c}))


TIMER: dict[str, float] = {"seconds": 0.0, "batches": 0}


def attach_timer() -> None:
    """Append the same step timer to whichever trainer rfdetr builds (ours and theirs alike)."""
    import rfdetr.training as rt
    import torch
    from pytorch_lightning import Callback

    class StepTimer(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch >= 1:
                torch.cuda.synchronize() if torch.cuda.is_available() else None
                self.start, self.batches = time.perf_counter(), 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch >= 1:
                self.batches += 1

        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch >= 1:
                torch.cuda.synchronize() if torch.cuda.is_available() else None
                TIMER["seconds"] += time.perf_counter() - self.start
                TIMER["batches"] += self.batches

    original = rt.build_trainer

    def build_trainer(*args, **kwargs):
        trainer = original(*args, **kwargs)
        trainer.callbacks.append(StepTimer())
        return trainer

    rt.build_trainer = build_trainer


def ours(data: Path, out: Path) -> float:
    from rfdetr_trainer.pipeline.context import RunPaths
    from rfdetr_trainer.schemas import ModelConfig, TrainingConfig
    from rfdetr_trainer.services.train import train

    c = cfg()
    training = TrainingConfig(epochs=c["epochs"], batch_size=c["batch"], grad_accum_steps=1, seed=7,
                              resolution=c["resolution"], device=c["device"], num_workers=c["workers"],
                              amp=c["amp"], checkpoint_interval=1000)
    start = time.perf_counter()
    train(ModelConfig(model_type="nano", pretrain_weights=None), training, data, RunPaths(out / "ours"),
          tensorboard=True, show_progress=False)
    return time.perf_counter() - start


def theirs(data: Path, out: Path) -> float:
    warnings.simplefilter("ignore")
    from rfdetr import RFDETRNano

    c = cfg()
    start = time.perf_counter()
    model = RFDETRNano(pretrain_weights=None, resolution=c["resolution"], device=c["device"])
    model.train(dataset_dir=str(data), output_dir=str(out / "theirs"), epochs=c["epochs"], batch_size=c["batch"],
                grad_accum_steps=1, seed=7, device=c["device"], num_workers=c["workers"],
                amp_dtype="auto" if c["amp"] else None, checkpoint_interval=1000)
    return time.perf_counter() - start


def compare(results: Path) -> int:
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    rate = {side: statistics.median(r["images_per_s"] for r in rows if r["side"] == side)
            for side in ("ours", "theirs")}
    wall = {side: statistics.median(r["wall_images_per_s"] for r in rows if r["side"] == side)
            for side in ("ours", "theirs")}
    ratio = rate["ours"] / rate["theirs"]
    verdict = "OK" if ratio >= 0.98 else "BELOW GOAL"
    print(f"steady state: rfdetr-trainer {rate['ours']:.1f} images/s, rfdetr {rate['theirs']:.1f} images/s, "
          f"ratio {ratio:.3f} (goal >= 0.98) -> {verdict}")
    print(f"wall (build + train incl. validation and checkpoints): rfdetr-trainer {wall['ours']:.1f} images/s, "
          f"rfdetr {wall['theirs']:.1f} images/s, ratio {wall['ours'] / wall['theirs']:.3f}")
    print(json.dumps({"ours_images_per_s": rate["ours"], "theirs_images_per_s": rate["theirs"], "ratio": ratio,
                      "wall": wall, "runs": rows}))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["make-data"]:
        make_data(Path(argv[1]))
        return 0
    if argv[:1] == ["compare"]:
        return compare(Path(argv[1]))
    side, data, out = argv[0], Path(argv[1]), Path(argv[2])
    attach_timer()
    seconds = {"ours": ours, "theirs": theirs}[side](data, out)
    c = cfg()
    images = c["train_images"] * c["epochs"]
    steady = TIMER["batches"] * c["batch"] / TIMER["seconds"] if TIMER["seconds"] else 0.0
    print("GPU_CHECK " + json.dumps({"side": side, "seconds": round(seconds, 3), "images": images,
                                     "wall_images_per_s": round(images / seconds, 2),
                                     "images_per_s": round(steady, 2), "steady_batches": TIMER["batches"],
                                     "config": c}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
