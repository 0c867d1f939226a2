"""Two CPU processes (gloo): --devices 2 --strategy ddp reaches Lightning, side effects stay on rank 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLEARML_VARS, Session

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).with_name("ddp_run.py")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rfdetr_trainer.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("ddp") / "ds", num_images=10, image_size=96)


@pytest.mark.parametrize("launcher", ["lightning", "torchrun"])
def test_two_process_ddp_side_effects_on_rank_zero_only(launcher: str, dataset: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CLEARML_VARS and k != "MASTER_PORT"}
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk { development { report_use_subprocess: false } }\n")
    env.update(HOME=str(tmp_path), CLEARML_CACHE_DIR=str(tmp_path / "cache"), CLEARML_CONFIG_FILE=str(conf),
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    out = tmp_path / "out"
    args = [str(SCRIPT), str(dataset), str(out), "--devices", "2", "--strategy", "ddp"]
    if launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    else:
        cmd = [sys.executable, *args]  # Lightning re-executes this command line for rank 1
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    participants = [json.loads(p.read_text()) for p in (out / "participants").glob("*.json")]
    assert len(participants) == 2 and len({p["pid"] for p in participants}) == 2
    assert sorted(p["rank_zero_at_start"] for p in participants) == [False, True]
    (rank0,) = [p for p in participants if p["rank_zero_at_start"]]

    side_effects = [json.loads(line) for line in (out / "side_effects.jsonl").read_text().splitlines()]
    assert [s["pid"] for s in side_effects] == [rank0["pid"]]  # only rank 0 ran them
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 1 and results[0].endswith(".pth")

    sessions = [p for p in (tmp_path / "cache" / "offline").iterdir() if p.is_dir()]
    assert len(sessions) == 1  # one ClearML task, not one per process
    scalars = Session(sessions[0]).scalars()
    assert [it for it, _ in scalars[("val", "mAP_50")]] == [0]  # reported once, by rank 0
    assert len((out / "run" / "metrics.jsonl").read_text().splitlines()) == 1
