"""annotate against the fake CVAT server: the exact shapes stored, human work kept, reruns idempotent.

The model is a real tiny checkpoint trained once per session; the expected shapes are computed from that same
model through the public inference functions, so every assertion compares what the server stores with what the
model said. Rule tests (frame choice, --replace, thresholds, polygons) drive the service with a fixed predictor
through both clients (cvat-sdk and the HTTP client), still against the server.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from support.cvat_data import FakeTask, human_box
from support.cvat_server import CvatServer, CvatState
from support.source_configs import cvat_config
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app
from rfdetr_trainer.errors import ConfigError
from rfdetr_trainer.integrations.cvat.base import connection_from_config
from rfdetr_trainer.integrations.cvat.tasks import make_task_api
from rfdetr_trainer.services.annotate import (
    DETECTION_FLOOR,
    AnnotateOptions,
    Detection,
    Thresholds,
    annotate,
    read_thresholds,
    resolve_thresholds,
)

SCORE_ATTR = {"name": "score", "input_type": "number", "mutable": True, "values": ["0", "1", "0.01"],
              "default_value": "0"}


@pytest.fixture(scope="module")
def tiny_model(trained_run, tiny_dataset):
    """The session's one real checkpoint (Nano from scratch on ``tiny_dataset``: square, circle, triangle)."""
    return trained_run.checkpoints / "checkpoint_best_total.pth", tiny_dataset


@pytest.fixture(scope="module")
def truth(tiny_model):
    """The frames, a threshold, and what the model says on them (computed once: loading it takes seconds)."""
    checkpoint, dataset = tiny_model
    frames = _frames_of(dataset)
    conf = _conf_for(checkpoint, frames)
    expected, unknown = _expected(checkpoint, frames, conf)
    return checkpoint, frames, conf, expected, unknown


def _frames_of(dataset: Path) -> list[tuple[str, bytes]]:
    images = sorted((dataset / "test").glob("*.jpg")) + sorted((dataset / "valid").glob("*.jpg"))
    return [(f"batch/{p.name}", p.read_bytes()) for p in images[:4]]


def _task(frames, **kw) -> FakeTask:
    # Labels: two of the model's three classes, so 'triangle' predictions have no label to land on.
    task = FakeTask(5, "to pre-annotate", labels=("square", "circle"), frames=frames,
                    label_attributes={"square": [SCORE_ATTR]}, **kw)
    task.shapes = [human_box(0, 501, 1.0, 2.0, 30.0, 40.0, id=900)]  # a person's box on frame 0
    return task


def _predictions(checkpoint: Path, frames, floor: float):
    """Per frame: the model's (class name, score, clipped box) through the public inference functions."""
    import tempfile

    from rfdetr_trainer.integrations.rfdetr.inference import load_model, predict_images

    model = load_model(checkpoint)
    names = model.class_names
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (_name, data) in enumerate(frames):
            paths.append(Path(tmp) / f"{i}.jpg")
            paths[-1].write_bytes(data)
        for pred in predict_images(model, paths, threshold=floor):
            pred = pred.nms(0.5)  # as annotate runs it (validation.iou_threshold)
            dets = []
            for box, score, label in zip(pred.boxes_xyxy, pred.scores, pred.labels):
                x0, y0, x1, y1 = (min(max(v, 0.0), lim) for v, lim in
                                  zip(box, (pred.width, pred.height, pred.width, pred.height)))
                (x0, x1), (y0, y1) = sorted((x0, x1)), sorted((y0, y1))  # as make_shape orders the corners
                name = names[label] if 0 <= label < len(names) else f"class_{label}"
                dets.append((name, score, [round(x0, 2), round(y0, 2), round(x1, 2), round(y1, 2)]))
            out.append(dets)
    return out


def _conf_for(checkpoint: Path, frames) -> float:
    """A threshold that keeps about a tenth of the tiny model's candidates (it scores ~0.01 after one epoch)."""
    preds = _predictions(checkpoint, frames, 0.0)
    scores = sorted(s for dets in preds for _n, s, _b in dets)
    known = sorted(s for dets in preds[1:] for n, s, _b in dets if n in ("square", "circle"))
    assert known, "the tiny model proposes no square or circle"
    keep = min(scores[int(len(scores) * 0.9)], known[-min(5, len(known))])
    below = [s for s in scores if s < keep]
    # Halfway to the next lower score, not on a score: annotate's batch differs from this one by float noise.
    return (keep + below[-1]) / 2 if below else keep


def _expected(checkpoint: Path, frames, conf: float):
    """Shapes the model gives for frames 1.. at ``conf`` (frame 0 holds human work): (frame, label id, points,
    score), and the unknown class names counted."""
    from collections import Counter

    ids = {"square": 501, "circle": 502}
    expected, unknown = [], Counter()
    floor = min(DETECTION_FLOOR, conf)
    for frame, dets in enumerate(_predictions(checkpoint, frames, floor)):
        if frame == 0:
            continue
        for name, score, points in dets:
            if score < conf:
                continue
            if name not in ids:
                unknown[name] += 1
            else:
                expected.append((frame, ids[name], points, round(score, 5)))
    return sorted(expected), dict(unknown)


def _close(value, want, tol: float) -> bool:
    return (value is None and want is None) or (value is not None and want is not None and abs(value - want) <= tol)


def _assert_pairs(got, want, same) -> None:
    """Each of ``got`` pairs with its own element of ``want`` under ``same``, and none is left over on either side."""
    left = list(want)
    for item in got:
        i = next((i for i, w in enumerate(left) if same(item, w)), None)
        assert i is not None, (item, left)
        del left[i]
    assert not left, left


def _assert_same_shapes(stored, expected) -> None:
    """The same frames, labels and count; boxes and scores equal to their last stored digit. annotate runs the
    model on other batches than ``_predictions``, and float sums in another order can move a value across a
    rounding step (81.025 stored as 81.02 once, 81.03 the other time), so shapes are paired, not zipped in
    sorted order: two boxes of one label whose left edges differ by 0.01 can sort either way."""
    _assert_pairs(stored, expected, lambda s, w: s[:2] == w[:2] and _close(s[3], w[3], 2e-5)
                  and all(_close(a, b, 0.0101) for a, b in zip(s[2], w[2])))


def _auto(task: FakeTask):
    return sorted((s["frame"], s["label_id"], s["points"], s.get("score")) for s in task.shapes
                  if s["source"] == "auto")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first one trains the module's tiny checkpoint
@pytest.mark.parametrize("version,downloader", [("2.73.0", "sdk"), ("2.73.0", "http"), ("2.14.0", "auto"),
                                                ("1.7.0", "auto")])
def test_annotate_uploads_the_models_boxes_and_keeps_human_work(truth, tmp_path, version, downloader, monkeypatch):
    checkpoint, frames, conf, expected, unknown = truth

    state = CvatState(version=version)
    task = state.add_task(_task(frames))
    with CvatServer(state) as server:
        for key, value in (("CVAT_HOST", server.url), ("CVAT_USERNAME", "admin"), ("CVAT_PASSWORD", "secret")):
            monkeypatch.setenv(key, value)
        args = ["annotate", "--checkpoint", str(checkpoint), "--cvat-task-ids", "5", "--conf", str(conf),
                "--cvat-downloader", downloader, "--output", str(tmp_path / "out"), "--env-file",
                os.devnull]
        monkeypatch.setenv("RFDETR_TRAINER_DATA__CACHE_DIR", str(tmp_path / "cache"))
        first = CliRunner().invoke(app, args)
        assert first.exit_code == 0, first.output
        stored = _auto(task)
        _assert_same_shapes(stored, [(f, lid, pts, sc if version >= "2" else None) for f, lid, pts, sc in expected])
        assert stored and all(f in (1, 2, 3) for f, *_ in stored)
        human = [s for s in task.shapes if s["source"] == "manual"]
        assert human == [human_box(0, 501, 1.0, 2.0, 30.0, 40.0, id=900)]
        squares = [s for s in task.shapes if s["source"] == "auto" and s["label_id"] == 501]
        assert all(s["attributes"] == [{"spec_id": 5011, "value": f"{round(s['score'], 2):.2f}"}]
                   for s in squares if "score" in s)
        summary = json.loads((tmp_path / "out" / "annotate_summary.json").read_text())["tasks"][0]
        assert summary["shapes_uploaded"] == len(expected)
        assert summary["unknown_labels"] == unknown and summary["frames_skipped_labeled"] == 1
        assert summary["skipped_unknown_label"] == sum(unknown.values())
        assert first.stdout.strip().splitlines()[-1] == str(tmp_path / "out" / "annotate_summary.json")
        assert f"{len(expected)} shapes uploaded" in first.stdout
        for name, count in unknown.items():
            assert f"{name} x{count}" in first.stdout

        version_before = task.version
        rerun = CliRunner().invoke(app, args)
        assert rerun.exit_code == 0, rerun.output
        assert _auto(task) == stored and task.version == version_before
        again = json.loads((tmp_path / "out" / "annotate_summary.json").read_text())["tasks"][0]
        frames_with_ours = len({f for f, *_ in stored})
        assert again["shapes_uploaded"] == 0 and again["frames_skipped_ours"] == frames_with_ours


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_dry_run_uploads_nothing_and_writes_coco_results(truth, tmp_path, monkeypatch):
    checkpoint, frames, conf, expected, _ = truth
    state = CvatState()
    task = state.add_task(_task(frames))
    with CvatServer(state) as server:
        monkeypatch.setenv("CVAT_HOST", server.url)
        monkeypatch.setenv("CVAT_ACCESS_TOKEN", "pat-admin-0123456789")
        monkeypatch.setenv("RFDETR_TRAINER_DATA__CACHE_DIR", str(tmp_path / "cache"))
        result = CliRunner().invoke(app, ["annotate", "-w", str(checkpoint), "--cvat-task-ids", "5", "--conf",
                                          str(conf), "--dry-run", "--output", str(tmp_path / "dry"),
                                          "--env-file", os.devnull])
    assert result.exit_code == 0, result.output
    assert task.version == 0 and not _auto(task)
    lines = result.stdout.strip().splitlines()
    for frame in (1, 2, 3):
        n = sum(1 for f, *_ in expected if f == frame)
        assert any(line.startswith(f"task 5 frame {frame} (batch/") and f"would upload {n} shapes" in line
                   for line in lines), lines
    assert not any(line.startswith("task 5 frame 0 ") for line in lines)  # human frame: not even planned
    coco = json.loads((tmp_path / "dry" / "task-5" / "predictions.coco.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["square", "circle"]
    assert [i["id"] for i in coco["images"]] == [2, 3, 4]
    got = sorted((a["image_id"] - 1, a["category_id"], a["score"]) for a in coco["annotations"])
    want = sorted((f, lid - 500, sc) for f, lid, _pts, sc in expected)
    _assert_pairs(got, want, lambda g, w: g[:2] == w[:2] and _close(g[2], w[2], 2e-5))
    results = json.loads((tmp_path / "dry" / "task-5" / "coco_results.json").read_text())
    assert len(results) == len(expected) and all(set(r) == {"image_id", "category_id", "bbox", "score"}
                                                 for r in results)


# ----------------------------------------------------------------------------------------- rules, fixed model


def _fixed(by_frame_name: dict[str, list[Detection]]):
    """A predictor that answers per file name (the cache names end with the frame's own name)."""

    def run(paths):
        for path in paths:
            yield next(v for k, v in by_frame_name.items() if path.name.endswith(k))

    return run


DETS = {
    "img_000.jpg": [Detection("car", 0.9, (1, 1, 5, 6))],
    "img_001.jpg": [Detection("car", 0.8, (-3, 2, 50, 9)), Detection("person", 0.3, (0, 0, 4, 4)),
                    Detection("bicycle", 0.95, (2, 2, 3, 3))],
    "img_002.jpg": [Detection("person", 0.7, (4, 4, 8, 9), polygon=(4, 4, 8, 4, 8, 9))],
}


def _rule_server(version: str = "2.73.0") -> tuple[CvatState, FakeTask]:
    state = CvatState(version=version)
    task = state.add_task(FakeTask(1, "rules", n_images=3, label_attributes={"car": [SCORE_ATTR]}))
    task.shapes = [human_box(0, 101, 2, 2, 9, 9, id=500),                      # human work on frame 0
                   {**human_box(2, 102, 1, 1, 3, 3, id=501), "source": "semi-auto"}]  # corrected auto shape
    return state, task


def _run(server, tmp_path, *, downloader="http", **opts):
    cfg = cvat_config(server, task_ids=[1], downloader=downloader)
    api = make_task_api(connection_from_config(cfg), downloader)
    try:
        options = AnnotateOptions(**{"thresholds": Thresholds(0.5), **opts})
        return annotate(api, [1], _fixed(DETS), options, tmp_path / "out", tmp_path / "frames").tasks[0]
    finally:
        api.close()


@pytest.mark.parametrize("downloader", ["http", "sdk"])
def test_default_fills_only_empty_frames_clips_boxes_and_reports_unknown(tmp_path, downloader):
    state, task = _rule_server()
    with CvatServer(state) as server:
        summary = _run(server, tmp_path, downloader=downloader)
    assert _auto(task) == [(1, 101, [0.0, 2.0, 33.0, 9.0], 0.8)]  # frame 1 is 33 px wide: box clipped
    assert summary.skipped_threshold == 1 and summary.unknown_labels == {"bicycle": 1}
    assert summary.frames_skipped_labeled == 2 and summary.frames_annotated == 1
    car = next(s for s in task.shapes if s["source"] == "auto")
    assert car["attributes"] == [{"spec_id": 1011, "value": "0.80"}]
    assert {s["id"] for s in task.shapes if s["source"] != "auto"} == {500, 501}


@pytest.mark.parametrize("downloader", ["http", "sdk"])
def test_frames_all_adds_beside_human_work_and_replace_swaps_only_ours(tmp_path, downloader):
    state, task = _rule_server()
    with CvatServer(state) as server:
        _run(server, tmp_path, downloader=downloader, frames="all")
        first = _auto(task)
        assert [f for f, *_ in first] == [0, 1, 2]
        assert next(s for s in task.shapes if s["source"] == "auto" and s["frame"] == 2)["type"] == "polygon"
        again = _run(server, tmp_path, downloader=downloader, frames="all")
        assert _auto(task) == first and again.shapes_uploaded == 0 and again.frames_skipped_ours == 3
        ids_before = {s["id"] for s in task.shapes if s["source"] == "auto"}
        replaced = _run(server, tmp_path, downloader=downloader, frames="all", replace=True)
    assert replaced.shapes_replaced == 3 and replaced.shapes_uploaded == 3
    assert _auto(task) == first and not ids_before & {s["id"] for s in task.shapes if s["source"] == "auto"}
    assert {s["id"] for s in task.shapes if s["source"] != "auto"} == {500, 501}


def test_per_class_thresholds_apply(tmp_path):
    state, task = _rule_server()
    with CvatServer(state) as server:
        summary = _run(server, tmp_path, frames="all", thresholds=Thresholds(0.95, {"car": 0.5, "person": 0.25}))
    assert sorted((f, lid) for f, lid, *_ in _auto(task)) == [(0, 101), (1, 101), (1, 102), (2, 102)]
    assert summary.skipped_threshold == 0 and summary.unknown_labels == {"bicycle": 1}


# ----------------------------------------------------------------------------------------- thresholds files
# Built by the writers evaluate and export use: evaluation.files.write_data_files and export_meta.stamp.


def _evaluate_into(folder: Path) -> dict:
    """Write an evaluation's files into ``folder`` as ``evaluate`` does; returns its thresholds (best-F1 confidences:
    car 0.8 and person 0.3 are the scores of their only true positives)."""
    from rfdetr_trainer.evaluation.core import evaluate_coco
    from rfdetr_trainer.evaluation.files import write_data_files

    gt = {"images": [{"id": 1, "file_name": "one.jpg", "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100,
                           "iscrowd": 0},
                          {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 20, 10, 10], "area": 100,
                           "iscrowd": 0}],
          "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}, {"id": 3, "name": "truck"}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.8},
            {"image_id": 1, "category_id": 1, "bbox": [60, 60, 10, 10], "score": 0.2},
            {"image_id": 1, "category_id": 2, "bbox": [20, 20, 10, 10], "score": 0.3}]
    evaluation = evaluate_coco(gt, dets)
    write_data_files(evaluation, folder)
    thresholds = evaluation.thresholds
    assert (thresholds["per_class"]["car"], thresholds["per_class"]["person"]) == pytest.approx((0.8, 0.3))
    return thresholds


def _run_folder(tmp_path: Path) -> tuple[Path, Path]:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint = run / "checkpoints" / "checkpoint_best_total.pth"
    checkpoint.write_bytes(b"\x80")
    return run, checkpoint


def _exported_onnx(path: Path, thresholds: dict | None) -> Path:
    """A tiny ONNX file stamped with the metadata export writes (class names, resolution, per-class thresholds
    from the run's thresholds.json, as export_stage reads them)."""
    import onnx
    from onnx import TensorProto, helper

    from rfdetr_trainer.integrations.rfdetr.export_meta import stamp
    from rfdetr_trainer.integrations.rfdetr.inference import Backend

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])])
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph), str(path))
    backend = Backend(class_names=["car", "person", "truck"], resolution=32, thresholds=thresholds)
    return stamp(path, backend.metadata())


def test_thresholds_auto_reads_the_evaluation_of_the_checkpoints_run(tmp_path):
    from rfdetr_trainer.pipeline.stages import resolve_thresholds as predict_thresholds

    run, checkpoint = _run_folder(tmp_path)
    valid = _evaluate_into(run / "evaluation" / "valid")
    limits = resolve_thresholds("auto", 0.5, checkpoint, lambda: {})
    path = run / "evaluation" / "valid" / "thresholds.json"
    assert limits == Thresholds(valid["overall"]["confidence"],
                                {"car": valid["per_class"]["car"], "person": valid["per_class"]["person"]},
                                str(path))
    assert limits.of("truck") == limits.overall  # truck has no ground truth: null in the file, the overall applies
    # The test split wins over valid, as for predict.
    (run / "evaluation" / "test").mkdir()
    test_file = run / "evaluation" / "test" / "thresholds.json"
    data = json.loads(path.read_text())
    data["per_class"]["car"] = 0.65
    test_file.write_text(json.dumps(data))
    limits = resolve_thresholds("auto", 0.5, checkpoint, lambda: {})
    assert (limits.of("car"), limits.source) == (0.65, str(test_file))
    assert limits.per_class == predict_thresholds("auto", checkpoint, None)
    assert resolve_thresholds(None, 0.35, checkpoint) == Thresholds(0.35)


def test_explicit_evaluate_thresholds_file(tmp_path):
    thresholds = _evaluate_into(tmp_path / "evaluation")
    path = tmp_path / "evaluation" / "thresholds.json"
    limits = resolve_thresholds(str(path), 0.5, tmp_path / "model.pth")
    assert (limits.overall, limits.per_class, limits.source) == (
        thresholds["overall"]["confidence"], {"car": 0.8, "person": 0.3}, str(path))
    with pytest.raises(ConfigError, match="no such file"):
        resolve_thresholds(str(tmp_path / "missing.json"), 0.5, tmp_path / "model.pth")


def test_thresholds_auto_reads_the_exported_models_metadata(tmp_path):
    from rfdetr_trainer.evaluation.files import read_thresholds as per_class_of

    evaluated = tmp_path / "evaluated"
    _evaluate_into(evaluated)
    run = tmp_path / "run"
    model = _exported_onnx(run / "export" / "model.onnx", per_class_of(evaluated / "thresholds.json"))
    limits = resolve_thresholds("auto", 0.45, model)  # no evaluation in the run: the file's metadata
    assert (limits.overall, limits.per_class, limits.source) == (0.45, {"car": 0.8, "person": 0.3},
                                                                 f"{model} (metadata)")
    _evaluate_into(run / "evaluation" / "test")  # an evaluation of the run comes first
    assert resolve_thresholds("auto", 0.45, model).source == str(run / "evaluation" / "test" / "thresholds.json")


def test_thresholds_auto_with_nothing_found_is_one_line(tmp_path, monkeypatch):
    run, checkpoint = _run_folder(tmp_path)
    with pytest.raises(ConfigError) as err:
        resolve_thresholds("auto", 0.5, checkpoint, lambda: {})
    for split in ("test", "valid"):
        assert str(run / "evaluation" / split / "thresholds.json") in err.value.message
    model = _exported_onnx(run / "export" / "model.onnx", None)
    monkeypatch.setenv("CVAT_HOST", "http://127.0.0.1:9")  # never reached: the thresholds are looked for first
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "pat-admin-0123456789")
    result = CliRunner().invoke(app, ["annotate", "--model", str(model), "--cvat-task-ids", "1", "--thresholds",
                                      "auto", "--env-file", os.devnull])
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert "--thresholds auto: no thresholds found" in lines[0], lines
    assert str(run / "evaluation" / "test" / "thresholds.json") in result.output.replace("\n", "")
    assert "metadata" in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize("content,message", [
    ('{"per_class": {}, "overall": {"confidence": 1.5}}',
     "overall.confidence: threshold must be a number in [0, 1], got 1.5"),
    ('{"overall": {"confidence": 0.3}, "per_class": {"car": "high"}}', "per_class.car: threshold must be a number"),
    ('{"criterion": "max F1"}', "not a thresholds.json"),
    ("not json", "cannot read thresholds"),
])
def test_bad_thresholds_file_names_the_field(tmp_path, content, message):
    path = tmp_path / "thresholds.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        read_thresholds(path)
    assert str(path) in err.value.message


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_evaluate_then_annotate_thresholds_auto(tiny_model, truth, tmp_path, monkeypatch):
    """The real chain: ``evaluate`` writes <run>/evaluation/test/thresholds.json, ``annotate --thresholds auto``
    of the run's checkpoint uses it."""
    from rfdetr_trainer.evaluation.files import read_threshold_values

    (checkpoint, dataset), frames = tiny_model, truth[1]
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / checkpoint.name
    shutil.copy(checkpoint, ckpt)
    evaluated = CliRunner().invoke(app, ["evaluate", "-w", str(ckpt), "--dataset-dir", str(dataset), "--split", "test",
                                         "--env-file", os.devnull])
    assert evaluated.exit_code == 0, evaluated.output
    path = run / "evaluation" / "test" / "thresholds.json"
    overall, per_class = read_threshold_values(path)
    state = CvatState()
    task = state.add_task(_task(frames))
    with CvatServer(state) as server:
        monkeypatch.setenv("CVAT_HOST", server.url)
        monkeypatch.setenv("CVAT_ACCESS_TOKEN", "pat-admin-0123456789")
        monkeypatch.setenv("RFDETR_TRAINER_DATA__CACHE_DIR", str(tmp_path / "cache"))
        result = CliRunner().invoke(app, ["annotate", "-w", str(ckpt), "--cvat-task-ids", "5", "--thresholds", "auto",
                                          "--conf", "0.42", "--dry-run", "--output", str(tmp_path / "dry"),
                                          "--env-file", os.devnull])
    assert result.exit_code == 0, result.output
    assert task.version == 0
    used = json.loads((tmp_path / "dry" / "annotate_summary.json").read_text())["thresholds"]
    assert used == {"overall": 0.42 if overall is None else overall, "per_class": per_class, "source": str(path)}


def test_cli_errors_are_one_line(tmp_path, monkeypatch):
    runner = CliRunner()
    no_model = runner.invoke(app, ["annotate", "--cvat-task-ids", "1", "--env-file", os.devnull])
    assert no_model.exit_code == 3 and "no model given" in no_model.output
    ckpt = tmp_path / "c.pth"
    ckpt.write_bytes(b"\x80")
    no_ids = runner.invoke(app, ["annotate", "-w", str(ckpt), "--env-file", os.devnull])
    assert no_ids.exit_code == 3 and "no CVAT task ids given" in no_ids.output
    bad_frames = runner.invoke(app, ["annotate", "-w", str(ckpt), "--cvat-task-ids", "1", "--frames", "some",
                                     "--env-file", os.devnull])
    assert bad_frames.exit_code == 3 and "--frames: 'some'" in bad_frames.output
