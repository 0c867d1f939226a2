"""fetch keeps only reviewed jobs and sends ground-truth frames to test, on current (sdk, http) and legacy servers;
every skipped frame is counted in the source origin and the dataset manifest."""

from __future__ import annotations

import json
import os

import pytest
from support.cvat_data import FakeProject, FakeTask
from support.cvat_server import CvatServer, CvatState
from support.source_configs import cvat_config
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app
from rfdetr_trainer.integrations.cvat import fetch_cvat

JOBS = [("acceptance", "completed"), ("acceptance", "completed"), ("annotation", "in progress"),
        ("validation", "rejected")]


def _reviewed_task(**kw) -> FakeTask:
    """12 frames in 4 jobs of 3; frames 2 and 7 are also in the ground-truth job."""
    return FakeTask(20, "reviewed", n_images=12, segment_size=3, job_states=list(JOBS), gt_frames=(2, 7),
                    validation_mode="gt", **kw)


def _names(frames) -> list[str]:
    return [f"t20/img_{f:03d}.jpg" for f in frames]


def _view(ref):
    docs = {p.stem[len("instances_"):]: json.loads(p.read_text())
            for p in (ref.path / "annotations").glob("instances_*.json")}
    return {subset: sorted(i["file_name"] for i in doc["images"]) for subset, doc in docs.items()}, docs


@pytest.mark.parametrize("version,downloader", [("2.73.0", "sdk"), ("2.73.0", "http"), ("2.20.0", "auto")])
@pytest.mark.parametrize("stages,states,kept", [
    (["acceptance"], [], [0, 1, 3, 4, 5]),
    ([], ["in-progress"], [6, 8]),
    (["annotation", "validation"], ["rejected"], [9, 10, 11]),
    ([], [], [0, 1, 3, 4, 5, 6, 8, 9, 10, 11]),
])
def test_job_filters_and_ground_truth(tmp_path, version, downloader, stages, states, kept):
    state = CvatState(version=version)
    state.add_task(_reviewed_task())
    with CvatServer(state) as server:
        cfg = cvat_config(server, task_ids=[20], downloader=downloader, job_stages=stages, job_states=states)
        (ref,) = fetch_cvat(cfg, tmp_path)
    subsets, docs = _view(ref)
    assert subsets == {"default": _names(kept), "test": _names([2, 7])}
    # Annotations travel with their frames (one box per frame in the export), ids renumbered per file.
    for doc in docs.values():
        image_ids = {i["id"] for i in doc["images"]}
        assert {a["image_id"] for a in doc["annotations"]} == image_ids
    assert [a["id"] for a in docs["test"]["annotations"]] == [1, 2]
    # Test frames carry the ground-truth job's expert boxes, not the annotators' copies in the task export.
    assert [(a["bbox"], a["category_id"]) for a in docs["test"]["annotations"]] == [([4.0, 4.0, 16.0, 16.0], 1)] * 2
    assert all(a["bbox"] == [2.0, 3.0, 10.0, 8.0] for a in docs["default"]["annotations"])
    for subset, names in subsets.items():
        assert all((ref.path / "images" / subset / n).is_file() for n in names)
    jobs = ref.origin["jobs"]
    assert jobs["frames_total"] == 12 and jobs["frames_kept"] == len(kept)
    assert jobs["frames_ground_truth_to_test"] == 2 and jobs["frames_skipped_honeypot"] == 0
    assert jobs["frames_skipped_by_job_filter"] == 12 - 2 - len(kept)
    assert jobs["ground_truth_annotations"] == 2
    assert ref.path.name == "task-20.jobs" and (tmp_path / "cvat").is_dir()


def test_gt_pool_validation_frames_to_test_honeypots_dropped(tmp_path):
    state = CvatState(version="2.73.0")
    state.add_task(FakeTask(20, "pool", n_images=8, segment_size=3, gt_frames=(6, 7), validation_mode="gt_pool",
                            honeypots={2: 6, 5: 7}))
    with CvatServer(state) as server:
        (ref,) = fetch_cvat(cvat_config(server, task_ids=[20], downloader="http"), tmp_path)
    subsets, _ = _view(ref)
    assert subsets == {"default": _names([0, 1, 3, 4]), "test": _names([6, 7])}
    assert ref.origin["jobs"]["frames_skipped_honeypot"] == 2


def test_no_gt_to_test_keeps_ground_truth_frames_in_place(tmp_path):
    state = CvatState(version="2.73.0")
    state.add_task(_reviewed_task())
    with CvatServer(state) as server:
        (ref,) = fetch_cvat(cvat_config(server, task_ids=[20], job_stages=["acceptance"], gt_to_test=False),
                            tmp_path)
    subsets, _ = _view(ref)
    assert subsets == {"default": _names([0, 1, 2, 3, 4, 5])}


def test_legacy_1x_jobs_from_segments(tmp_path):
    state = CvatState(version="1.7.0")
    state.add_task(FakeTask(20, "old", n_images=6, segment_size=3, job_states=[("acceptance", "completed")]))
    with CvatServer(state) as server:
        (ref,) = fetch_cvat(cvat_config(server, task_ids=[20], job_stages=["acceptance"]), tmp_path)
        assert state.count(r"GET /api/v1/tasks/20$") >= 1 and state.count(r"/api/jobs") == 0
    subsets, _ = _view(ref)
    assert subsets == {"default": _names([0, 1, 2])}
    assert ref.origin["jobs"]["jobs_skipped"] == [{"id": 2002, "stage": "annotation", "state": "in progress",
                                                  "frames": 3}]


def test_no_ground_truth_no_filters_reads_no_jobs(tmp_path):
    state = CvatState(version="2.73.0")
    state.add_task(FakeTask(20, "plain", n_images=4))
    with CvatServer(state) as server:
        (ref,) = fetch_cvat(cvat_config(server, task_ids=[20]), tmp_path)
        assert state.count(r"/api/jobs") == 0
    assert ref.path.name == "task-20" and "jobs" not in ref.origin


@pytest.mark.parametrize("version,downloader", [("2.73.0", "sdk"), ("2.73.0", "http"), ("2.20.0", "auto")])
def test_project_job_filters_and_ground_truth_per_task(tmp_path, version, downloader):
    """A project export cannot be mapped back to task frames: with a stage filter, its tasks are fetched one by
    one and each gets the task's job view (ground truth to test, filtered jobs counted)."""
    state = CvatState(version=version)
    state.add_project(FakeProject(7, "p"), [_reviewed_task(), FakeTask(21, "plain", n_images=4)])
    with CvatServer(state) as server:
        cfg = cvat_config(server, project_ids=[7], downloader=downloader, job_stages=["acceptance"])
        refs = fetch_cvat(cfg, tmp_path)
    assert [r.name for r in refs] == ["cvat-task-20", "cvat-task-21"]
    assert all(r.origin["from_project"] == 7 for r in refs)
    subsets, docs = _view(refs[0])
    assert subsets == {"default": _names([0, 1, 3, 4, 5]), "test": _names([2, 7])}
    assert [(a["bbox"], a["category_id"]) for a in docs["test"]["annotations"]] == [([4.0, 4.0, 16.0, 16.0], 1)] * 2
    jobs = refs[0].origin["jobs"]
    assert (jobs["frames_kept"], jobs["frames_ground_truth_to_test"], jobs["frames_skipped_by_job_filter"]) == (5, 2, 5)
    assert refs[1].origin["jobs"]["frames_skipped_by_job_filter"] == 4  # its only job is still in annotation


def test_project_ground_truth_without_filters_splits_only_that_project(tmp_path):
    state = CvatState(version="2.73.0")
    state.add_project(FakeProject(7, "with gt"), [_reviewed_task()])
    state.add_project(FakeProject(8, "plain"), [FakeTask(30, "a", n_images=3), FakeTask(31, "b", n_images=2)])
    with CvatServer(state) as server:
        refs = fetch_cvat(cvat_config(server, project_ids=[7, 8], downloader="http"), tmp_path)
        # validation_mode null on every task of project 8: no jobs read, no task exported
        assert state.count(r"/api/jobs\?task_id=3") == 0 and state.count(r"/api/tasks/3\d/dataset") == 0
    assert [r.name for r in refs] == ["cvat-task-20", "cvat-project-8"]
    assert refs[1].path.name == "project-8" and "jobs" not in refs[1].origin
    subsets, _ = _view(refs[0])
    assert subsets == {"default": _names([0, 1, 3, 4, 5, 6, 8, 9, 10, 11]), "test": _names([2, 7])}


def _task_20(state: CvatState) -> None:
    state.add_task(_reviewed_task())


def _project_7(state: CvatState) -> None:
    state.add_project(FakeProject(7, "p"), [_reviewed_task()])


@pytest.mark.parametrize("add,target", [
    (_task_20, ["--cvat-task-ids", "20", "--cvat-job-stage", "acceptance"]),
    (_project_7, ["--cvat-project-ids", "7"]),  # fetched task by task, so each task gets its job view
], ids=["task", "project"])
def test_fetch_cli_puts_ground_truth_only_in_test_and_counts_skips_in_manifest(tmp_path, monkeypatch, add, target):
    state = CvatState()
    add(state)
    with CvatServer(state) as server:
        for key, value in (("CVAT_HOST", server.url), ("CVAT_USERNAME", "admin"), ("CVAT_PASSWORD", "secret")):
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("RFDETR_TRAINER_DATA__CACHE_DIR", str(tmp_path / "cache"))
        result = CliRunner().invoke(app, [
            "fetch", *target, "--cvat-job-state", "completed",
            "--data-dir", str(tmp_path / "prepared"), "--env-file", os.devnull, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    prepared = tmp_path / "prepared"
    split_names = {}
    for split in ("train", "valid", "test"):
        doc = json.loads((prepared / split / "_annotations.coco.json").read_text())
        split_names[split] = {i["file_name"] for i in doc["images"]}
    gt = {n.split("/")[-1] for n in _names([2, 7])}
    assert all(any(name.endswith(g) for name in split_names["test"]) for g in gt)
    assert not any(name.endswith(g) for g in gt for s in ("train", "valid") for name in split_names[s])
    assert sum(len(v) for v in split_names.values()) == 7
    jobs = out["sources"][0]["origin"]["jobs"]
    assert jobs["frames_skipped_by_job_filter"] == 5 and jobs["frames_ground_truth_to_test"] == 2
    manifest = json.loads((prepared / "dataset_manifest.json").read_text())
    assert json.dumps(jobs, sort_keys=True) in json.dumps(manifest, sort_keys=True)


def test_ratio_split_with_ground_truth_is_refused(tmp_path, monkeypatch):
    state = CvatState()
    state.add_task(_reviewed_task())
    with CvatServer(state) as server:
        for key, value in (("CVAT_HOST", server.url), ("CVAT_USERNAME", "admin"), ("CVAT_PASSWORD", "secret")):
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("RFDETR_TRAINER_DATA__CACHE_DIR", str(tmp_path / "cache"))
        result = CliRunner().invoke(app, ["fetch", "--cvat-task-ids", "20", "--split", "0.8", "0.1", "0.1",
                                          "--data-dir", str(tmp_path / "out"), "--env-file", os.devnull])
    assert result.exit_code == 3, result.output
    assert "ground-truth frames of cvat-task-20 could land in train" in result.output
    assert not (tmp_path / "out").exists()
