"""fetch_cvat against the loopback CVAT server: every downloader, server generations, caching, subsets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.source_configs import cvat_config

from rfdetr_trainer.integrations.cvat import fetch_cvat

# (server version, --cvat-downloader, downloader expected to do the work, images nested per subset)
CASES = [
    ("2.73.0", "auto", "http", True),
    ("2.73.0", "http", "http", True),
    ("2.73.0", "sdk", "sdk", True),
    ("2.25.0", "sdk", "sdk", True),  # /server/about lacks logo_url/subtitle: make_client would crash
    ("2.20.0", "auto", "http", True),  # current flow, but result_url is the legacy action=download URL
    ("2.20.0", "http-legacy", "http-legacy", True),
    ("2.16.0", "auto", "http", False),  # flat images/ until 2.16.1
    ("2.14.4", "auto", "http-legacy", False),  # CSRF workaround; download before finish is a 400
    ("2.14.2", "http-legacy", "http-legacy", False),  # download before finish re-enqueues
    ("1.7.0", "auto", "http-legacy", False),  # /api/v1
]


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("version,choice,used,nested", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_fetch_tasks_and_project(cvat_factory, tmp_path, version, choice, used, nested):
    server = cvat_factory(version)
    refs = fetch_cvat(cvat_config(server, task_ids=[1, 2], project_ids=[7], downloader=choice), tmp_path)

    assert [r.name for r in refs] == ["cvat-task-1", "cvat-task-2", "cvat-project-7"]
    for ref in refs:
        assert ref.origin["type"] == "cvat" and ref.origin["server"] == server.url
        assert ref.origin["downloader"] == used and ref.origin["updated_date"].startswith("2025-01-01")
        assert ref.path.is_dir() and ref.path.parent.parent == tmp_path / "cvat"
    assert refs[0].origin["task_id"] == 1 and refs[2].origin["project_id"] == 7

    task_files = _files(refs[0].path)
    prefix = "images/default/t1" if nested else "images/t1"
    assert task_files == ["annotations/instances_default.json"] + [f"{prefix}/img_00{i}.jpg" for i in range(3)]
    doc = json.loads((refs[0].path / "annotations/instances_default.json").read_text())
    assert [c["name"] for c in doc["categories"]] == ["car", "person"]
    assert len(doc["images"]) == 3 and len(doc["annotations"]) == 3

    project_files = _files(refs[2].path)
    assert "annotations/instances_Train.json" in project_files
    assert "annotations/instances_Validation.json" in project_files
    assert sum(f.startswith("images/") for f in project_files) == 4 + 3
    # Nothing temporary is left next to the results.
    assert not [p for p in refs[0].path.parent.iterdir() if p.name.startswith(".")]

    state = server.state
    if used == "http-legacy":
        assert state.count(r"^POST .*/dataset/export") == 0 and state.count(r"action=download") == 3
    else:
        assert state.count(r"^POST /api/(tasks|projects)/\d+/dataset/export") == 3
        assert state.count(r"^GET /api/requests/") >= 3
    if version.startswith("1."):
        assert state.count(r"^GET /api/v1/tasks/1/dataset\?") >= 2


def test_refetch_uses_cache_until_updated_date_changes(cvat_factory, tmp_path):
    server = cvat_factory()
    cfg = cvat_config(server, task_ids=[1, 2, 3])
    fetch_cvat(cfg, tmp_path)
    exports = server.state.count(r"^POST .*/export")
    assert exports == 3

    refs = fetch_cvat(cfg, tmp_path)
    assert server.state.count(r"^POST .*/export") == 3, "unchanged tasks must not be exported again"
    assert all(r.origin["cached"] for r in refs)

    server.state.tasks[2].updated_date = "2025-02-02T00:00:00.000000Z"
    refs = fetch_cvat(cfg, tmp_path)
    assert server.state.count(r"^POST .*/export") == 4
    assert [r.origin["cached"] for r in refs] == [True, False, True]
    assert refs[1].origin["updated_date"].startswith("2025-02-02")

    fetch_cvat(cfg.model_copy(update={"refresh": True}), tmp_path)
    assert server.state.count(r"^POST .*/export") == 7

    # Annotations-only is a different export: not served from the with-images cache.
    refs = fetch_cvat(cfg.model_copy(update={"include_images": False, "task_ids": [1]}), tmp_path)
    assert server.state.count(r"^POST .*/export\?.*save_images=false") == 1
    assert _files(refs[0].path) == ["annotations/instances_default.json"]


@pytest.mark.parametrize("wanted,kept", [(["train"], ["Train"]), (["Validation", "TRAIN"], ["Train", "Validation"])])
def test_project_subsets(cvat_factory, tmp_path, wanted, kept):
    server = cvat_factory()
    (ref,) = fetch_cvat(cvat_config(server, project_ids=[7], subsets=wanted), tmp_path)
    files = _files(ref.path)
    assert sorted(f.split("/")[1] for f in files if f.startswith("images/")) == sorted(
        [s for s in kept for _ in range(4 if s == "Train" else 3)]
    )
    assert [f for f in files if f.startswith("annotations/")] == [f"annotations/instances_{s}.json" for s in kept]
    assert ref.origin["subsets"] == kept


def test_unknown_subset_names_the_available_ones(cvat_factory, tmp_path):
    from rfdetr_trainer.errors import SourceError

    server = cvat_factory()
    with pytest.raises(SourceError) as err:
        fetch_cvat(cvat_config(server, project_ids=[7], subsets=["test"]), tmp_path)
    assert "project 7" in err.value.message and "test" in err.value.message
    assert "Train" in err.value.hint and "Validation" in err.value.hint


@pytest.mark.parametrize("choice", ["http", "sdk"])
def test_personal_access_token(cvat_factory, tmp_path, choice):
    server = cvat_factory("2.73.0")
    cfg = cvat_config(server, username=None, password=None, access_token="pat-admin-0123456789",
                      task_ids=[1], downloader=choice)
    (ref,) = fetch_cvat(cfg, tmp_path)
    assert (ref.path / "annotations/instances_default.json").is_file()
    assert server.state.count(r"/auth/login") == 0


def test_tasks_are_exported_concurrently(cvat_factory, tmp_path):
    server = cvat_factory(export_delay=0.6)
    start = time.monotonic()
    fetch_cvat(cvat_config(server, task_ids=[1, 2, 3], concurrency=3), tmp_path)
    elapsed = time.monotonic() - start
    assert elapsed < 1.4, f"3 exports of 0.6 s took {elapsed:.2f} s: not concurrent"


def test_progress_counts_targets_and_bytes(cvat_factory, tmp_path):
    server = cvat_factory()
    seen: list[tuple[int, int, int, int]] = []
    fetch_cvat(cvat_config(server, task_ids=[1, 2]), tmp_path, progress=lambda *a: seen.append(a))
    files_done, files_total, bytes_done, bytes_total = seen[-1]
    assert (files_done, files_total) == (2, 2)
    assert bytes_done == bytes_total > 0


def test_auto_falls_back_to_current_flow_on_410(cvat_factory, tmp_path):
    server = cvat_factory("2.73.0")
    server.state.fail_next(r"/server/about", 10, status=404)  # version unknown: legacy is tried first
    refs = fetch_cvat(cvat_config(server, task_ids=[1, 2], concurrency=1), tmp_path)
    assert [r.origin["downloader"] for r in refs] == ["http", "http"]
    assert server.state.count(r"^GET /api/tasks/1/dataset\?format") == 1  # one 410, then never again
    assert server.state.count(r"^GET /api/tasks/2/dataset\?format") == 0
