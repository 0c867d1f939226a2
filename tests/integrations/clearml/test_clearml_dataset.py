"""ClearML Dataset versions through the real SDK against a loopback API + files server (offline mode cannot
finalize or fetch datasets): merge/fetch register versions with parent and manifest metadata, fetch and train
pull one with get_local_copy(), and a running task records the dataset id it trained on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.clearml_server import ClearMLServer
from support.clearml_session import CLEARML_VARS, reset_clearml
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app
from rfdetr_trainer.synthetic import make_dataset


@pytest.fixture(scope="module")
def clearml_server():
    with ClearMLServer() as server:
        yield server


@pytest.fixture
def online(clearml_server, tmp_path, monkeypatch):
    """The SDK pointed at the loopback server, with its cache and HOME under the test's temp dir."""
    reset_clearml()  # an earlier test of the session may have left ClearML's offline flags on
    for name in CLEARML_VARS:
        monkeypatch.delenv(name, raising=False)
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk { development { report_use_subprocess: false } }\n")
    for key, value in {"CLEARML_API_HOST": clearml_server.url, "CLEARML_FILES_HOST": clearml_server.url,
                       "CLEARML_WEB_HOST": clearml_server.url, "CLEARML_API_ACCESS_KEY": "key",
                       "CLEARML_API_SECRET_KEY": "secret", "HOME": str(tmp_path / "home"),
                       "CLEARML_CACHE_DIR": str(tmp_path / "cache"), "CLEARML_CONFIG_FILE": str(conf)}.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "home").mkdir()
    from clearml.backend_interface.base import InterfaceBase

    # Build the SDK's process-wide API session now, online, and fail at once if it has no token: a session left
    # from an earlier offline test makes every later call retry forever instead.
    assert InterfaceBase._get_default_session().token, "ClearML's default session is not logged in"
    yield clearml_server
    for name in ("CLEARML_PROC_MASTER_ID", "TRAINS_PROC_MASTER_ID", "CLEARML_TASK_ID"):
        os.environ.pop(name, None)
    reset_clearml()


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _merge(args: list[str]):
    result = CliRunner().invoke(app, ["merge", *args, "--env-file", os.devnull])
    assert result.exit_code == 0, result.output
    return result


def test_merge_registers_versions_with_parent_files_and_manifest(online, tmp_path):
    from clearml import Dataset

    first = make_dataset(tmp_path / "a", num_images=6, image_size=64, seed=1)
    second = make_dataset(tmp_path / "b", num_images=6, image_size=64, seed=2)
    out1 = tmp_path / "merged1"
    v1 = _merge([str(first), "--data-dir", str(out1), "--clearml-dataset", "shapes", "--json"])
    id1 = json.loads(v1.stdout)["clearml_dataset_id"]
    out2 = tmp_path / "merged2"
    v2 = _merge([str(first), str(second), "--data-dir", str(out2), "--clearml-dataset", "shapes", "--json"])
    id2 = json.loads(v2.stdout)["clearml_dataset_id"]
    assert id1 != id2

    one, two = Dataset.get(dataset_id=id1), Dataset.get(dataset_id=id2)
    assert one.get_dependency_graph() == {id1: []}
    assert two.get_dependency_graph()[id2] == [id1]
    assert set(one.list_files()) == _files(out1)
    assert set(two.list_files()) == _files(out2)
    manifest = json.loads((out2 / "dataset_manifest.json").read_text())
    assert two.get_metadata() == manifest
    assert two.get_metadata()["counts"]["images"] == 12
    latest = Dataset.get(dataset_name="shapes", dataset_project="rfdetr-trainer", only_completed=True)
    assert latest.id == id2 and online.state.tasks[id2]["status"] in ("completed", "published")


def test_unknown_dataset_id_is_one_line(online, tmp_path):
    result = CliRunner().invoke(app, ["fetch", "--clearml-dataset-id", "0123456789abcdef", "--env-file",
                                      os.devnull])
    assert result.exit_code == 3, result.output
    assert "ClearML dataset 0123456789abcdef: not found" in result.output
    assert "Traceback" not in result.output


def test_fetch_pulls_a_version_and_a_running_task_records_its_id(online, tmp_path):
    from clearml import Task

    source = make_dataset(tmp_path / "src", num_images=6, image_size=64, seed=3)
    out = tmp_path / "merged"
    version = json.loads(_merge([str(source), "--data-dir", str(out), "--clearml-dataset", "pulled", "--json"])
                         .stdout)["clearml_dataset_id"]

    fetched = CliRunner().invoke(app, ["fetch", "--clearml-dataset-id", version, "--json", "--data-dir",
                                       str(tmp_path / "fetched"), "--env-file", os.devnull])
    assert fetched.exit_code == 0, fetched.output
    result = json.loads(fetched.stdout)
    local = Path(result["dataset_dir"])
    # the version lands where -o/--data-dir says (issue 8), ClearML's cached copy stays as it is
    assert local == tmp_path / "fetched" and result["sources"][0]["origin"] == {"type": "clearml",
                                                                               "dataset_id": version}
    assert _files(local) == _files(out) and local != out
    assert (local / "train" / "_annotations.coco.json").read_bytes() == (
        out / "train" / "_annotations.coco.json").read_bytes()

    # What train does: pull inside the run's task, so the task carries Datasets/train = the version id.
    from rfdetr_trainer.integrations.clearml.dataset import pull_version

    # No argument-parser binding: clearml would patch click for the rest of the process.
    task = Task.init(project_name="runs", task_name="train-on-pulled", auto_connect_frameworks=False,
                     auto_resource_monitoring=False, auto_connect_streams=False, auto_connect_arg_parser=False)
    try:
        pull_version(version)
        assert task.get_parameter("Datasets/train") == version
        stored = online.state.tasks[task.id]["hyperparams"]["Datasets"]["train"]
        assert stored["value"] == version
    finally:
        task.close()


@pytest.mark.slow
def test_train_on_a_dataset_version_links_its_task_to_the_id(online, tmp_path):
    import subprocess
    import sys

    from support.tiny_model import TINY_TRAIN

    source = make_dataset(tmp_path / "src", num_images=8, image_size=96, seed=4)
    version = json.loads(_merge([str(source), "--data-dir", str(tmp_path / "merged"), "--clearml-dataset",
                                 "to-train", "--json"]).stdout)["clearml_dataset_id"]
    args = [a for a in TINY_TRAIN if a != "--no-clearml"]
    # A process of its own, as a user runs it: ClearML keeps process-wide state (the main task, its reporter
    # thread, the API session) that earlier in-process tests of a long session had left behind, and that once
    # made this task's final flush wait forever.
    result = subprocess.run([sys.executable, "-m", "rfdetr_trainer", "train", "--clearml-dataset-id", version,
                             "--clearml", "--project-name", "runs", "--task-name", "on-version", "--output-dir",
                             str(tmp_path / "runs"), "--data-dir", str(tmp_path / "pulled"), "--run-name", "v",
                             *args, "--env-file", os.devnull], capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stderr[-4000:]
    assert Path(result.stdout.strip().splitlines()[-1]).is_file()
    (task,) = [t for t in online.state.tasks.values() if t.get("name") == "on-version"]
    assert task["hyperparams"]["Datasets"]["train"]["value"] == version
    # The trained model is an output of that task: model -> task -> dataset version.
    outputs = [m for m in online.state.models.values() if m.get("task") == task["id"]]
    assert "best" in [m.get("name") for m in outputs]
