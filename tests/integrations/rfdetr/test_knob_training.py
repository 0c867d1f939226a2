"""One real CPU training with rfdetr 1.11's knobs, as a user types it; each is read back from what the run left.

``--augment aggressive --freeze-encoder --eval-interval 2 --lr-scheduler cosine --warmup-epochs 1`` must reach
rfdetr's own ``training_config.json``, change the training (validation only on the second epoch), and appear
as editable ClearML hyperparameters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.clearml_session import CLEARML_VARS, only_session

pytestmark = pytest.mark.slow


def test_knobs_reach_a_real_training(tmp_path: Path) -> None:
    from rfdetr_trainer.synthetic import make_dataset

    data = make_dataset(tmp_path / "ds", num_images=8, image_size=64)
    env = {k: v for k, v in os.environ.items()
           if k not in CLEARML_VARS and not k.startswith(("RFDETR_TRAINER_", "CVAT_", "MINIO_"))}
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk { development { report_use_subprocess: false } }\n")
    env.update(HOME=str(tmp_path), CLEARML_CACHE_DIR=str(tmp_path / "cache"), CLEARML_CONFIG_FILE=str(conf),
               PYTHONUNBUFFERED="1")
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "rfdetr_trainer", "train", "--dataset-dir", str(data), "--output-dir", str(runs),
           "--run-name", "knobs", "--pretrain-weights", "none", "--epochs", "2", "--batch-size", "2",
           "--grad-accum-steps", "1", "--resolution", "64", "--device", "cpu", "--num-workers", "0", "--no-ema",
           "--no-tensorboard", "--augment", "aggressive", "--freeze-encoder", "--eval-interval", "2",
           "--lr-scheduler", "cosine", "--warmup-epochs", "1", "--clearml", "--clearml-offline", "--no-final-eval"]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-4000:]
        run = runs / "knobs"
        assert proc.stdout.strip().splitlines()[-1] == str(run / "checkpoints" / "checkpoint_best_total.pth")
        # --no-final-eval: no evaluation of the best checkpoint on valid after the fit, so no report either
        assert not (run / "evaluation").exists() and not (run / "report.html").exists()

        saved = json.loads((run / "checkpoints" / "training_config.json").read_text())  # written by RFDETR.train()
        train_config, model_config = saved["train_config"], saved["model_config"]
        assert set(train_config["aug_config"]) == {"HorizontalFlip", "VerticalFlip", "Rotate", "Affine",
                                                   "ColorJitter"}
        assert (train_config["lr_scheduler"], train_config["warmup_epochs"], train_config["eval_interval"]) == (
            "cosine", 1.0, 2)
        assert model_config["freeze_encoder"] is True
        assert saved["class_names"] == ["square", "circle", "triangle"]  # rfdetr's post-fit rewrite happened

        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in records] == [1]  # eval_interval 2: the first epoch did not validate

        hyper = only_session(tmp_path / "cache").hyperparams()
        assert (hyper["training"]["augment"], hyper["training"]["lr_scheduler"]) == ("aggressive", "cosine")
        assert (hyper["training"]["eval_interval"], hyper["training"]["warmup_epochs"]) == ("2", "1.0")
        assert hyper["model"]["freeze_encoder"] == "True"
        assert hyper["validation"]["after_training"] == "False"
    finally:
        shutil.rmtree(runs, ignore_errors=True)  # checkpoints are large
