"""TaskManager against a real (offline) ClearML session, the agent override path, and unreachable servers."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
from support.clearml_session import only_session

from rfdetr_trainer.errors import ConfigError, TrackingError
from rfdetr_trainer.integrations.clearml import TaskManager, enqueue_remote
from rfdetr_trainer.integrations.clearml.params import apply_sections, to_sections
from rfdetr_trainer.integrations.clearml.remote import entry_point, strip_remote
from rfdetr_trainer.schemas.experiment import ClearMLConfig
from rfdetr_trainer.settings import Settings

SECRETS = {"password": "hunter2-pw", "access_token": "tok-98765", "access_key": "AKIA-XYZ", "secret_key": "s3cr3t-KEY"}


def settings_with_secrets() -> Settings:
    return Settings.model_validate({
        "data": {"cvat": {"host": "http://cvat.local", "username": "ann", "password": SECRETS["password"],
                          "access_token": SECRETS["access_token"], "task_ids": [1, 2]},
                 "minio": {"endpoint": "minio:9000", "access_key": SECRETS["access_key"],
                           "secret_key": SECRETS["secret_key"], "bucket": "b"}},
        "training": {"epochs": 3, "resolution": 224},
        "experiment": {"clearml": {"enabled": True, "offline": True}},
    })


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------- params


def test_sections_hold_every_setting_but_no_secret() -> None:
    settings = settings_with_secrets()
    sections = to_sections(settings)
    assert set(sections) == {"model", "training", "data", "experiment", "validation", "export"}
    assert sections["training"]["epochs"] == 3
    assert sections["data"]["cvat.host"] == "http://cvat.local"
    assert sections["data"]["cvat.task_ids"] == [1, 2]
    for key in ("cvat.password", "cvat.access_token", "minio.access_key", "minio.secret_key"):
        assert key not in sections["data"]
    dumped = json.dumps(sections)
    assert not any(secret in dumped for secret in SECRETS.values())


@pytest.mark.parametrize(
    ("section", "key", "ui_value", "attr", "expected"),
    [
        ("training", "epochs", "7", ("training", "epochs"), 7),
        ("training", "lr", 0.001, ("training", "lr"), 0.001),
        ("training", "use_ema", False, ("training", "use_ema"), False),
        ("model", "num_classes", "5", ("model", "num_classes"), 5),          # None locally, set in the UI
        ("model", "model_type", "small", ("model", "model_type"), "small"),
        ("training", "resolution", "", ("training", "resolution"), None),   # cleared in the UI
        ("data", "split.ratios", [0.5, 0.25, 0.25], ("data", "split"), None),
        ("experiment", "clearml.tags", ["a", "b"], ("experiment", "clearml"), None),
    ],
)
def test_ui_values_rebuild_settings(section, key, ui_value, attr, expected) -> None:
    settings = settings_with_secrets()
    sections = to_sections(settings)
    sections[section][key] = ui_value
    new, changed = apply_sections(settings, sections)
    assert f"{section}.{key}" in changed
    value = getattr(getattr(new, attr[0]), attr[1])
    if expected is not None or ui_value == "":
        assert value == expected
    assert new.data.cvat.password.get_secret_value() == SECRETS["password"]  # secrets kept from local


def test_invalid_ui_value_names_the_parameter() -> None:
    settings = settings_with_secrets()
    sections = to_sections(settings)
    sections["training"]["epochs"] = "zero"
    with pytest.raises(ConfigError, match="training/epochs"):
        apply_sections(settings, sections)


# ------------------------------------------------------------------------------------------- offline


def test_offline_session_params_dataset_model_and_agent_override(clearml_home: Path, tmp_path: Path) -> None:
    from clearml.config.remote import override_current_task_id

    settings = settings_with_secrets()
    tm = TaskManager(settings.experiment.clearml.model_copy(update={"tags": ["unit"], "project_name": "tests"}))
    assert tm.init_task(task_name="run-1", tags=["extra"]) is True
    assert tm.connect_params(settings) == settings  # run locally: nothing changes

    # The agent path: the UI edited two hyperparameters; clearml-agent sets CLEARML_TASK_ID, which makes
    # clearml's running_remotely() true and task.connect() return the task's stored values.
    tm.task.set_parameter("training/epochs", "9")
    tm.task.set_parameter("model/model_type", "small")
    override_current_task_id(tm.task.id)
    try:
        effective = tm.connect_params(settings)
    finally:
        override_current_task_id(None)
    assert effective.training.epochs == 9 and tm.get_training_config().epochs == 9
    assert tm.get_model_config().model_type == "small"
    assert effective.training.resolution == 224  # untouched values stay
    assert effective.data.minio.secret_key.get_secret_value() == SECRETS["secret_key"]
    assert set(tm.overrides) == {"training.epochs", "model.model_type"}

    manifest = {"manifest_version": 1, "counts": {"images": 5, "splits": {
        "train": {"images": 3, "annotations": 4, "background": 0, "classes": {"cat": 3, "dog": 1}},
        "valid": {"images": 2, "annotations": 2, "background": 1, "classes": {"cat": 2}}}}}
    tm.log_dataset_info(manifest)
    weights = tmp_path / "checkpoint_best_total.pth"
    weights.write_bytes(b"weights" * 10)
    tm.log_model(weights, name="best", class_names=["cat", "dog"], metrics={"val/mAP_50": 0.5})
    tm.report_console("a console line from the runner")
    folder = tm.close()
    assert folder is not None and folder.with_suffix(".zip").is_file()

    session = only_session(clearml_home)
    assert session.task["name"] == "run-1" and session.task["project_name"] == "tests"
    assert set(session.task["tags"]) >= {"unit", "extra"}
    params = session.hyperparams()
    assert {"model", "training", "data", "experiment", "validation", "export"} <= set(params)
    assert params["training"]["epochs"] == "9"
    assert params["data"]["cvat.host"] == "http://cvat.local"
    assert "cvat.password" not in params["data"] and "minio.secret_key" not in params["data"]
    text = session.all_text()
    assert not any(secret in text for secret in SECRETS.values())

    plots = {(e["metric"], e["variant"]) for e in session.of_type("plot")}
    assert {("dataset", "splits"), ("dataset", "classes")} <= plots
    table = next(e for e in session.of_type("plot") if e["variant"] == "classes")
    assert "dog" in table["plot_str"]
    assert (folder / "data").rglob("dataset_manifest*.json")
    manifest_files = list(folder.rglob("dataset_manifest*.json"))
    assert manifest_files and json.loads(manifest_files[0].read_text())["counts"]["images"] == 5

    (model,) = session.task["offline_output_models"]
    assert model["init"]["name"] == "best" and model["init"]["label_enumeration"] == {"cat": 0, "dog": 1}
    assert model["init"]["config_dict"]["metrics"] == {"val/mAP_50": 0.5}
    assert Path(model["weights"]["weights_filename"]).read_bytes() == weights.read_bytes()
    assert ("Summary", "best/val/mAP_50") in session.scalars() or "best/val/mAP_50" in json.dumps(session.events)
    assert "a console line from the runner" in session.log


def test_dataset_counts_from_folder_when_manifest_has_none(clearml_home: Path, tmp_path: Path) -> None:
    from rfdetr_trainer.synthetic import make_dataset

    dataset = make_dataset(tmp_path / "ds", num_images=5, image_size=32)
    tm = TaskManager(ClearMLConfig(enabled=True, offline=True))
    assert tm.init_task(task_name="counts")
    tm.log_dataset_info(None, dataset_dir=dataset)
    tm.close()
    table = next(e for e in only_session(clearml_home).of_type("plot") if e["variant"] == "splits")
    assert '"train"' in table["plot_str"] and '"valid"' in table["plot_str"]


# ------------------------------------------------------------------------------------------- unreachable


def test_unreachable_server_warns_once_and_goes_on(clearml_home, monkeypatch, caplog) -> None:
    monkeypatch.setenv("CLEARML_API_HOST", f"http://127.0.0.1:{free_port()}")
    tm = TaskManager(ClearMLConfig(enabled=True))
    with caplog.at_level(logging.WARNING, logger="rfdetr_trainer"):
        assert tm.init_task(task_name="x") is False
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("rfdetr_trainer")]
    assert len(warnings) == 1 and "can't be reached" in warnings[0].getMessage()
    assert not tm.active
    settings = settings_with_secrets()
    assert tm.connect_params(settings) is settings  # every method is a no-op
    tm.log_dataset_info({"counts": {}})
    assert tm.close() is None


def test_unreachable_server_required_raises_tracking_error(clearml_home, monkeypatch) -> None:
    monkeypatch.setenv("CLEARML_API_HOST", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TrackingError) as err:
        TaskManager(ClearMLConfig(enabled=True, required=True)).init_task()
    assert err.value.exit_code == 12 and "can't be reached" in err.value.message


def test_disabled_and_non_zero_rank_do_nothing(clearml_home, monkeypatch) -> None:
    assert TaskManager(ClearMLConfig(enabled=False, offline=True)).init_task() is False
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert TaskManager(ClearMLConfig(enabled=True, offline=True, required=True)).init_task() is False
    assert not (clearml_home / "offline").exists()


# ------------------------------------------------------------------------------------------- remote


class FakeTask:
    id = "abc123"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def set_script(self, **kw):
        self.calls.append(("set_script", kw))

    def execute_remotely(self, **kw):
        self.calls.append(("execute_remotely", kw))

    def get_output_log_web_page(self):
        return "http://app/task/abc123"


def test_enqueue_remote_records_entry_point_and_queue(clearml_home) -> None:
    tm = TaskManager(ClearMLConfig(enabled=True))
    tm.task = FakeTask()
    argv = ["run", "--dataset-dir", "data/x y", "--remote", "gpu", "--epochs", "5", "--remote=other"]
    assert enqueue_remote(tm, "gpu", argv=argv) is True
    (_, script), (_, execute) = tm.task.calls
    assert script["entry_point"] == "-m rfdetr_trainer run --dataset-dir 'data/x y' --epochs 5"
    assert execute == {"queue_name": "gpu", "clone": False, "exit_process": False}
    assert strip_remote(["--remote", "q"]) == [] and entry_point([]) == "-m rfdetr_trainer"


def test_enqueue_remote_is_a_no_op_under_the_agent(clearml_home) -> None:
    from clearml.config.remote import override_current_task_id

    tm = TaskManager(ClearMLConfig(enabled=True))
    tm.task = FakeTask()
    override_current_task_id("agent-task")
    try:
        assert enqueue_remote(tm, "gpu", argv=["run"]) is False
    finally:
        override_current_task_id(None)
    assert tm.task.calls == []


def test_enqueue_remote_without_task_or_offline_fails(clearml_home) -> None:
    with pytest.raises(TrackingError, match="no ClearML task"):
        enqueue_remote(TaskManager(ClearMLConfig(enabled=False)), "gpu", argv=[])
    tm = TaskManager(ClearMLConfig(enabled=True, offline=True))
    assert tm.init_task()
    try:
        with pytest.raises(TrackingError, match="offline"):
            enqueue_remote(tm, "gpu", argv=[])
    finally:
        tm.close()


def test_init_from_class_mapping_is_a_clearml_configuration(clearml_home: Path) -> None:
    """--init-from's class mapping lands in the offline session as a configuration object."""
    from rfdetr_trainer.pipeline.tracking import Tracker

    settings = settings_with_secrets()
    tm = TaskManager(settings.experiment.clearml.model_copy(update={"project_name": "tests"}))
    assert tm.init_task(task_name="mapped") is True
    mapping = {"source": "/runs/prev/checkpoint_best_total.pth", "kept": {"square": [0, 1]}, "new": ["star"],
               "removed": ["circle"], "copied_tensors": 3, "fresh_tensors": 0}
    Tracker(settings, task_manager=tm).log_class_mapping(mapping)
    Tracker(settings).log_class_mapping(mapping)  # no ClearML task: nothing to do, no error
    tm.close()
    text = only_session(clearml_home).all_text()
    assert "init_from class mapping" in text and "star" in text and "circle" in text
