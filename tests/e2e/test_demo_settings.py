"""``make demo`` as the Makefile runs it, with the demo's own settings but fewer epochs (not a timed test).

Keeps the demo from drifting: the dataset command and ``examples/demo.yaml`` the Makefile uses still run end to
end, the settings reach rfdetr, ``examples/demo_report.py`` prints the figure, and the README states the epochs
and the figure the demo config is tuned for.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import REPO

pytestmark = pytest.mark.slow



def _demo_commands() -> tuple[list[str], list[str], list[str]]:
    """The dataset, run and report command lines of the Makefile's demo target ($(VAR)s left in)."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    body = text.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    lines = [shlex.split(line.strip()) for line in body.splitlines()[1:] if line.startswith("\t")]
    dataset = next(line for line in lines if "examples/make_synthetic_dataset.py" in line)
    run = next(line for line in lines if any(part.endswith("rfdetr-trainer") for part in line))
    report = next(line for line in lines if "examples/demo_report.py" in line)
    return dataset, run, report


def _option(argv: list[str], flag: str) -> list[str]:
    i = argv.index(flag)
    values = []
    for value in argv[i + 1:]:
        if value.startswith("--"):
            break
        values.append(value)
    return values


def test_demo_settings_run_end_to_end(tmp_path: Path) -> None:
    dataset_cmd, run_cmd, report_cmd = _demo_commands()
    demo = yaml.safe_load((REPO / "examples" / "demo.yaml").read_text())
    assert _option(run_cmd, "--config") == ["examples/demo.yaml"]

    # Same dataset settings, fewer images; same config, one epoch of two steps.
    args = dataset_cmd[dataset_cmd.index("examples/make_synthetic_dataset.py") + 1:]
    args[0] = str(tmp_path / "data")
    args[args.index("--num-images") + 1] = "12"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RFDETR_TRAINER_", "CLEARML_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    subprocess.run([sys.executable, str(REPO / "examples" / "make_synthetic_dataset.py"), *args], check=True,
                   env=env, cwd=REPO, capture_output=True)
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "rfdetr_trainer", "run", "--config", str(REPO / "examples" / "demo.yaml"),
         "--dataset-dir", str(tmp_path / "data"), "--output-dir", str(runs), "--run-name", "demo",
         "--epochs", "1", "--max-steps", "2"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    manifest_path = runs / "demo" / "run_manifest.json"
    lines = proc.stdout.strip().splitlines()  # run ends like train: the best checkpoint, the manifest before it
    assert lines[-2] == f"manifest: {manifest_path}" and lines[-1].endswith(".pth"), lines[-3:]

    saved = json.loads((runs / "demo" / "checkpoints" / "training_config.json").read_text())
    for key, value in demo["training"].items():
        if key in saved["train_config"] and key not in {"epochs"}:
            assert saved["train_config"][key] == value, key
    assert saved["model_config"]["resolution"] == demo["training"]["resolution"]
    if "num_queries" in demo.get("model", {}):
        assert saved["model_config"]["num_queries"] == demo["model"]["num_queries"]
    classes = _option(dataset_cmd, "--classes")
    assert saved["class_names"] == classes

    report = subprocess.run([sys.executable, str(REPO / "examples" / "demo_report.py"), str(manifest_path)],
                            capture_output=True, text=True, check=True)
    assert re.match(r"demo: mAP50 \d\.\d{3} on the test split at confidence 0\.5 \(goal >= 0\.5: ", report.stdout)
    assert report_cmd[-1].endswith("run_manifest.json")

    readme = (REPO / "README.md").read_text()
    demo_text = " ".join(readme.split("`make demo` trains", 1)[1].split("`make bench`", 1)[0].split())
    # The README describes the settings in use: epochs, resolution, queries, time budget, the figure's goal.
    assert f"for {demo['training']['epochs']} epochs" in demo_text
    assert f"resolution {demo['training']['resolution']}" in demo_text
    assert f"{demo['model']['num_queries']} queries" in demo_text
    assert f"training.max_time: {demo['training']['max_time']}" in demo_text
    assert "mAP50 >= 0.5" in demo_text and "Figure reached:" in demo_text
