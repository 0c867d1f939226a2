"""A run driven the way the runner drives one, for the multi-process tests.

Usage: ``python ddp_run.py DATASET OUT --devices 2 --strategy ddp`` (Lightning re-executes this script once per
extra device with LOCAL_RANK set) or ``torchrun --nproc-per-node 2 ddp_run.py DATASET OUT --devices 2
--strategy ddp``. Every process records that it ran in ``OUT/participants/``; rank-0-only side effects are
the ClearML offline session, ``OUT/side_effects.jsonl`` and the result line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rfdetr_trainer.distributed import global_rank, is_rank_zero
from rfdetr_trainer.integrations.clearml import TaskManager, make_callback
from rfdetr_trainer.pipeline.context import RunPaths
from rfdetr_trainer.schemas import ModelConfig, TrainingConfig
from rfdetr_trainer.schemas.experiment import ClearMLConfig
from rfdetr_trainer.services.train import train


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--devices", default="2")
    parser.add_argument("--strategy", default="ddp")
    parser.add_argument("--resolution", type=int, default=128)
    args = parser.parse_args()

    participants = args.out / "participants"
    participants.mkdir(parents=True, exist_ok=True)
    (participants / f"pid-{os.getpid()}.json").write_text(json.dumps(
        {"pid": os.getpid(), "rank_zero_at_start": is_rank_zero(), "rank": global_rank(),
         "LOCAL_RANK": os.environ.get("LOCAL_RANK"), "RANK": os.environ.get("RANK")}))

    cfg = ClearMLConfig(enabled=True, offline=True, project_name="ddp-test", log_every_n_steps=1)
    tm = TaskManager(cfg)
    tm.init_task(task_name="ddp")  # a no-op off rank 0
    training = TrainingConfig(epochs=1, batch_size=2, grad_accum_steps=1, device="cpu", num_workers=0,
                              resolution=args.resolution, devices=args.devices, strategy=args.strategy,
                              use_ema=False)
    result = train(ModelConfig(model_type="nano", pretrain_weights=None), training, args.dataset,
                   RunPaths(args.out / "run"), tensorboard=False, show_progress=False,
                   extra_callbacks=[make_callback(tm, cfg)])
    if not is_rank_zero():
        return 0
    folder = tm.close()
    with (args.out / "side_effects.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "offline_session": str(folder), "epochs": result.epochs_completed,
                             "world_size": os.environ.get("WORLD_SIZE")}) + "\n")
    print(f"RESULT {result.best_checkpoint}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
