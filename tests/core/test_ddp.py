"""Two CPU processes (gloo): --devices 2 --strategy ddp reaches Lightning, side effects stay on rank 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.clearml_session import CLEARML_VARS, Session

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rfdetr_trainer.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("ddp") / "ds", num_images=10, image_size=96)


@pytest.mark.parametrize("launcher", ["lightning", "torchrun"])
def test_two_process_ddp_side_effects_on_rank_zero_only(launcher: str, dataset: Path, tmp_path: Path) -> None:
    """`rfdetr-trainer run --devices 2 --strategy ddp` as a user types it (or under torchrun)."""
    env = {k: v for k, v in os.environ.items()
           if k not in CLEARML_VARS and k != "MASTER_PORT" and not k.startswith(("RFDETR_TRAINER_", "CVAT_"))}
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk { development { report_use_subprocess: false } }\n")
    env.update(HOME=str(tmp_path), CLEARML_CACHE_DIR=str(tmp_path / "cache"), CLEARML_CONFIG_FILE=str(conf),
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    out = tmp_path / "runs"
    args = ["-m", "rfdetr_trainer", "run", "--dataset-dir", str(dataset), "--output-dir", str(out),
            "--pretrain-weights", "none", "--epochs", "1", "--batch-size", "2", "--grad-accum-steps", "1",
            "--resolution", "128", "--device", "cpu", "--num-workers", "0", "--no-ema", "--devices", "2",
            "--strategy", "ddp", "--clearml", "--clearml-offline", "--project-name", "ddp-test"]
    if launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    else:
        cmd = [sys.executable, *args]  # Lightning re-executes this command line for rank 1
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]  # both ranks agreed on one run folder
    manifests = [line for line in proc.stdout.splitlines() if line.startswith("manifest: ")]
    assert manifests == [f"manifest: {run_dir / 'run_manifest.json'}"]  # one result, from rank 0
    manifest = json.loads((run_dir / "run_manifest.json").read_text())
    assert set(manifest["stages"]) == {"fetch", "train", "predict", "export", "evaluate", "report"}
    assert manifest["config"]["training"]["strategy"] == "ddp"
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1  # one record per epoch, not per rank
    assert [p.name for p in (run_dir / "export").iterdir()] == ["model.onnx"]

    sessions = [p for p in (tmp_path / "cache" / "offline").iterdir() if p.is_dir()]
    assert len(sessions) == 1  # one ClearML task, not one per process
    scalars = Session(sessions[0]).scalars()
    assert [it for it, _ in scalars[("val", "mAP_50")]] == [0]  # reported once, by rank 0
