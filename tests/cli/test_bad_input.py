"""Issue 14: bad input and faults, as a new user meets them. One table: exit code, the one ``error:`` line, and
what is left on disk.

Each row builds its own inputs in a fresh workspace (``bad_input_harness.Workspace``) and names the numbered
case of the issue it pins.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.bad_input_harness import Case, Workspace, mode, no_temporaries, run, tree
from support.coco_fixtures import Img, ann, write_dataset
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app
from rfdetr_trainer.errors import EXIT_CODES

DAY = 24 * 3600


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, trained_run) -> Iterator[Path]:
    """A copy of the session's one real checkpoint (``trained_run``: Nano from scratch, 1 epoch on CPU): a second
    training for this table cost a minute and tested nothing more."""
    root = tmp_path_factory.mktemp("ckpt")
    keep = root / "checkpoint_best_total.pth"
    shutil.copy(trained_run.checkpoints / "checkpoint_best_total.pth", keep)
    yield keep
    shutil.rmtree(root, ignore_errors=True)



# ----------------------------------------------------------------------------------- the rows, by case


def export_bad_image(w: Workspace) -> Case:  # 1
    out = w.root / "E"
    model = w.file("E/model.onnx", b"verified model bytes")
    w.file("notimg.txt", "not an image")
    return Case(["export", "--checkpoint", str(w.checkpoint), "--dynamic-batch", "--image", str(w.root / "notimg.txt"),
                 "--output", str(out)], 3, "--image | notimg.txt | not a readable image",
                check=lambda: (model.read_bytes() == b"verified model bytes" or pytest.fail("model replaced"),
                               tree(out) == {"model.onnx"} or pytest.fail(str(tree(out))), no_temporaries(out)),
                how="subprocess", heavy_modules=False)


def export_missing_image(w: Workspace) -> Case:  # 1, 12
    out = w.root / "E"
    model = w.file("E/model.onnx", b"verified model bytes")
    return Case(["export", "--checkpoint", str(w.checkpoint), "--image", str(w.root / "nope.jpg"),
                 "--output", str(out)],
                3, "--image | nope.jpg | does not exist",
                check=lambda: (model.read_bytes() == b"verified model bytes" or pytest.fail("model replaced"),
                               no_temporaries(out)))


def export_parity_failure(w: Workspace) -> Case:  # 1
    out = w.root / "E"
    model = w.file("E/model.onnx", b"verified model bytes")
    return Case(["export", "--checkpoint", str(w.checkpoint), "--image", str(w.image()), "--output", str(out),
                 "--export-format", "onnx"], 10, "onnx | disagrees with PyTorch | nothing was written",
                env={"RFDETR_TRAINER_EXPORT__PARITY_ATOL": "1e-30"},
                check=lambda: (model.read_bytes() == b"verified model bytes" or pytest.fail("model replaced"),
                               tree(out) == {"model.onnx"} or pytest.fail(str(tree(out))), no_temporaries(out)))


def export_new_folder_not_left(w: Workspace) -> Case:  # 12
    out = w.root / "new" / "export"
    return Case(["export", "--checkpoint", str(w.checkpoint), "--image", str(w.root / "nope.jpg"),
                 "--output", str(out)],
                3, "nope.jpg", check=lambda: (not (w.root / "new").exists()) or pytest.fail("folder left"))


def _merge_of(w: Workspace, name: str, change: Callable[[Path], None], *extra: str, code: int = 4,
              line: str | None = None, stderr: tuple[str, ...] = (), how: str = "in-process") -> Case:
    src = w.dataset(name)
    change(src)
    out = w.root / "out"
    check = (lambda: (not out.exists() or pytest.fail("output left"), no_temporaries(out))) if code else (
        lambda: _inspect_ok(out))
    return Case(["merge", str(src), "-o", str(out), *extra], code, line, check=check, stderr=stderr, how=how)


def _inspect_ok(out: Path) -> None:
    result = CliRunner().invoke(app, ["inspect", str(out)])
    assert result.exit_code == 0, result.output  # what merge wrote passes the validation train runs


def merge_text_as_image(w: Workspace) -> Case:  # 2
    return _merge_of(w, "text", lambda s: (s / "train" / "a0.png").write_text("I am text"),
                     line="text/train/a0.png | 1 of 8 images can't be used | image_unreadable")


def merge_zero_byte_image(w: Workspace) -> Case:  # 2
    return _merge_of(w, "zero", lambda s: (s / "train" / "a1.png").write_bytes(b""),
                     line="zero/train/a1.png | image_unreadable")


def merge_unreadable_image(w: Workspace) -> Case:  # 2 (hard-linked as is before)
    return _merge_of(w, "unread", lambda s: (s / "train" / "a2.png").chmod(0), how="nobody",
                     line="unread/train/a2.png | image_unreadable")


def merge_null_bbox(w: Workspace) -> Case:  # 2
    def null(src: Path) -> None:
        w.edit_json(src / "train" / "_annotations.coco.json", lambda d: d["annotations"][0].update(bbox=None))
    return _merge_of(w, "nullbox", null, code=0, line=None,
                     stderr=("nullbox/train/_annotations.coco.json id 1: bbox is not four finite numbers",))


def merge_null_bbox_strict(w: Workspace) -> Case:  # 2
    def null(src: Path) -> None:
        w.edit_json(src / "train" / "_annotations.coco.json", lambda d: d["annotations"][0].update(bbox=None))
    return _merge_of(w, "nullbox", null, "--strict", line="id 1: bbox is not four finite numbers | --strict")


def merge_counts_from_written_files(w: Workspace) -> Case:  # 3
    a = write_dataset(w.root / "A", {
        "train": [Img("s.png", [ann("car"), ann("car", [1, 1, 3, 3])], color=(200, 1, 1))] +
                 [Img(f"a{i}.png", [ann("car")], color=(i, 3, 3)) for i in range(3)],
        "valid": [Img("v.png", [ann("car")], color=(50, 3, 3))],
        "test": [Img("t.png", [ann("car")], color=(80, 3, 3))]})
    b = write_dataset(w.root / "B", {
        "train": [Img(f"b{i}.png", [ann("car")], color=(100 + i, 3, 3)) for i in range(3)],
        "valid": [Img("w.png", [ann("car")], color=(150, 3, 3))],
        "test": [Img("s2.png", [ann("car", [5, 5, 4, 4]), ann("car", [9, 9, 2, 2])], color=(200, 1, 1))]})
    out = w.root / "out"

    def check() -> None:
        manifest = json.loads((out / "dataset_manifest.json").read_text())["counts"]
        for split in ("train", "valid", "test"):
            data = json.loads((out / split / "_annotations.coco.json").read_text())
            annotated = {a["image_id"] for a in data["annotations"]}
            entry = manifest["splits"][split]
            assert entry["annotations"] == len(data["annotations"]), (split, entry)
            assert entry["background"] == sum(1 for i in data["images"] if i["id"] not in annotated), (split, entry)
        assert manifest["annotations"] == 13 and manifest["classes"] == {"car": 13}, manifest
    return Case(["merge", str(a), str(b), "-o", str(out)], 0, None, check=check)


def merge_unknown_category(w: Workspace) -> Case:  # 4
    def bad(src: Path) -> None:
        w.edit_json(src / "train" / "_annotations.coco.json", lambda d: d["annotations"][0].update(category_id=77))
    return _merge_of(w, "badcat", bad, code=0,
                     stderr=("badcat/train/_annotations.coco.json id 1: category_id 77 names no category",))


def merge_unknown_category_strict(w: Workspace) -> Case:  # 4
    def bad(src: Path) -> None:
        w.edit_json(src / "train" / "_annotations.coco.json", lambda d: d["annotations"][0].update(category_id=77))
    return _merge_of(w, "badcat", bad, "--strict", line="category_id 77 names no category | --strict")


def merge_duplicate_class_name(w: Workspace) -> Case:  # 4
    def dup(src: Path) -> None:
        w.edit_json(src / "train" / "_annotations.coco.json",
                    lambda d: d["categories"].append({"id": 9, "name": "car", "supercategory": ""}))
    return _merge_of(w, "dupname", dup, code=0,
                     stderr=("dupname/train/_annotations.coco.json id 9: category name 'car' is used by ids",))


def merge_drop_unknown_class(w: Workspace) -> Case:  # 4
    return _merge_of(w, "drop", lambda s: None, "--drop", "hexagon", "--rename", "pentagon=car", code=0,
                     stderr=("--rename/--drop 'hexagon': no class of that name",
                             "--rename/--drop 'pentagon': no class of that name"))


def merge_drop_unknown_class_strict(w: Workspace) -> Case:  # 4
    return _merge_of(w, "drop", lambda s: None, "--drop", "hexagon", "--strict", line="'hexagon' | --strict")


def merge_unused_class_map_entry(w: Workspace) -> Case:  # 4
    mapping = w.file("map.yaml", "hexagon: square\ncar: vehicle\n")
    return _merge_of(w, "mapped", lambda s: None, "--class-map", str(mapping), code=3,
                     line="map.yaml: entry 'hexagon' matches no class of any source")


def debug_keeps_exit_code(w: Workspace) -> Case:  # 5
    bad = w.file("bad.json", "{")
    return Case(["train", "--config", str(bad), "--debug"], 3, "bad.json: malformed JSON", traceback=True)


def env_file_not_utf8(w: Workspace) -> Case:  # 6
    env = w.file("latin.env", b"CVAT_USERNAME=J\xf6rg\n")
    return Case(["merge", str(w.dataset()), "-o", str(w.root / "out"), "--env-file", str(env)], 3,
                "latin.env: env file is not UTF-8", check=lambda: (not (w.root / "out").exists()) or pytest.fail())


def env_variable_not_json(w: Workspace) -> Case:  # 6
    return Case(["merge", str(w.dataset()), "-o", str(w.root / "out")], 3,
                "environment: RFDETR_TRAINER_DATA__SPLIT__RATIOS | not valid JSON",
                env={"RFDETR_TRAINER_DATA__SPLIT__RATIOS": "notjson"})


def dotenv_variable_not_json(w: Workspace) -> Case:  # 6
    w.file(".env", "RFDETR_TRAINER_DATA__SPLIT__RATIOS=notjson\n")
    return Case(["merge", str(w.dataset()), "-o", str(w.root / "out")], 3,
                ".env: RFDETR_TRAINER_DATA__SPLIT__RATIOS | not valid JSON")


def unreadable_annotation_file(w: Workspace) -> Case:  # 6
    src = w.dataset("locked")
    (src / "valid" / "_annotations.coco.json").chmod(0)
    return Case(["inspect", str(src)], 4, "locked/valid/_annotations.coco.json | Permission denied", how="nobody")


def train_devices_not_a_count(w: Workspace) -> Case:  # 6
    return Case(["train", "--dataset-dir", str(w.dataset()), "--pretrain-weights", "none", "--devices", "abc",
                 "--output-dir", str(w.root / "runs")], 3, "--devices | 'abc' is not a device count",
                check=lambda: (not (w.root / "runs").exists()) or pytest.fail("run folder left"))


def train_cuda_without_gpu(w: Workspace) -> Case:  # 6
    return Case(["train", "--dataset-dir", str(w.dataset()), "--pretrain-weights", "none", "--device", "cuda:99",
                 "--output-dir", str(w.root / "runs")], 3, "--device cuda:99 | GPU",
                check=lambda: (not (w.root / "runs").exists()) or pytest.fail("run folder left"))


def predict_on_non_image(w: Workspace) -> Case:  # 6, 9
    text = w.file("notes.jpg", "this is a text file")
    return Case(["predict", "--checkpoint", str(w.checkpoint), "--input", str(text), "--output", str(w.root / "P")],
                4, "notes.jpg: is not a readable image", how="subprocess", heavy_modules=False,
                check=lambda: (not (w.root / "P").exists()) or pytest.fail("output left"))


def predict_folder_with_broken_image(w: Workspace) -> Case:  # 6
    folder = w.root / "photos"
    folder.mkdir()
    for image in (w.dataset() / "train").glob("*.png"):
        shutil.copy(image, folder / image.name)
    (folder / "a1.png").write_bytes((folder / "a1.png").read_bytes()[:40])  # cut off after the header
    return Case(["predict", "--checkpoint", str(w.checkpoint), "--input", str(folder), "--output", str(w.root / "P")],
                4, "photos/a1.png: is not a readable image",
                check=lambda: (not (w.root / "P").exists()) or pytest.fail("output left"))


def env_file_missing(w: Workspace) -> Case:  # 7
    return Case(["merge", str(w.dataset()), "-o", str(w.root / "out"), "--env-file", str(w.root / "nope.env")], 3,
                "nope.env: env file does not exist")


def env_file_is_folder(w: Workspace) -> Case:  # 7
    (w.root / "envdir").mkdir()
    return Case(["merge", str(w.dataset()), "-o", str(w.root / "out"), "--env-file", str(w.root / "envdir")], 3,
                "envdir: env file is a folder")


def split_nan(w: Workspace) -> Case:  # 7
    return Case(["merge", str(w.dataset()), "-o", str(w.root / "out"), "--split", "nan", "0.5", "0.5"], 3,
                "--split: data.split | finite")


def split_error_names_split(w: Workspace) -> Case:  # 8
    return Case(["merge", str(w.dataset()), "-o", str(w.root / "out"), "--split", "0.5", "0.5", "0.5"], 3,
                "--split: data.split | sum to 1", not_in_output=("--mode",))


def class_map_bad_yaml(w: Workspace) -> Case:  # 8
    mapping = w.file("map.yaml", "rename: [car\n  tree: x\n")
    return Case(["merge", str(w.dataset()), "-o", str(w.root / "out"), "--class-map", str(mapping)], 3,
                "map.yaml: not valid YAML (line 2 column", not_in_output=("<unicode string>",))


def unreadable_source_without_links(w: Workspace) -> Case:  # 8
    return _merge_of(w, "nolinks", lambda s: (s / "valid" / "v1.png").chmod(0), "--no-links", how="nobody",
                     line="nolinks/valid/v1.png | image_unreadable")


def predict_missing_input_before_model(w: Workspace) -> Case:  # 9
    return Case(["predict", "--checkpoint", str(w.checkpoint), "--input", str(w.root / "nothing"),
                 "--output", str(w.root / "P")], 4, "nothing: does not exist", how="subprocess", heavy_modules=False)


def export_unwritable_output_before_model(w: Workspace) -> Case:  # 9
    w.file("a-file", "")
    return Case(["export", "--checkpoint", str(w.checkpoint), "--image", str(w.image()),
                 "--output", str(w.root / "a-file" / "E")], 11, "output folder is not writable", how="subprocess",
                heavy_modules=False)


def silent_cvat_server(w: Workspace) -> Case:  # 10, 13
    address = w.silent_server()
    return Case(["fetch", "--cvat-task-ids", "1", "--cvat-downloader", "http", "--data-dir", str(w.root / "out")], 5,
                f"CVAT http://***@{address} | login failed after 2 attempts | no answer within 0.5 s",
                env={"CVAT_HOST": f"http://bob:hunter2-pw@{address}", "CVAT_USERNAME": "bob",
                     "CVAT_PASSWORD": "hunter3-pw", "RFDETR_TRAINER_DATA__CVAT__READ_TIMEOUT_S": "0.5",
                     "RFDETR_TRAINER_DATA__CVAT__RETRIES": "1", "RFDETR_TRAINER_DATA__CVAT__RETRY_BACKOFF": "0.05"},
                stderr=("retrying (attempt 2 of 2)",), not_in_output=("hunter2-pw", "hunter3-pw"), max_seconds=4)


def stale_merge_temporaries(w: Workspace) -> Case:  # 11
    src = w.dataset()
    old = w.file(".out.tmp-abc123/train/a0.png", b"x" * 1000).parent.parent
    dead = w.file(".out.tmp-999999-xyz/train/a0.png", b"x" * 1000).parent.parent
    fresh = w.file(".out.tmp-fresh/train/a0.png", b"x").parent.parent  # maybe a merge running now: kept
    for path in (old, old / "train", old / "train" / "a0.png"):
        os.utime(path, (time.time() - 2 * DAY, time.time() - 2 * DAY))

    def check() -> None:
        assert not old.exists() and not dead.exists(), "stale temporaries were not removed"
        assert fresh.exists(), "a fresh temporary (maybe another run's) was removed"
        assert (w.root / "out" / "dataset_manifest.json").is_file()
    return Case(["merge", str(src), "-o", str(w.root / "out")], 0, None, check=check,
                stderr=("removed 2 stale temporary folder(s)",))


def failed_train_leaves_no_run_folder(w: Workspace) -> Case:  # 12
    src = w.dataset("broken")
    (src / "train" / "a0.png").unlink()
    return Case(["train", "--dataset-dir", str(src), "--pretrain-weights", "none", "--output-dir", str(w.root / "runs"),
                 "--run-name", "r1"], 4, "a0.png", check=lambda: tree(w.root / "runs") == set() or pytest.fail(
                     str(tree(w.root / "runs"))))


def failed_run_stage_is_recorded(w: Workspace) -> Case:  # 12
    src = w.dataset("broken")
    (src / "train" / "a0.png").unlink()
    manifest = w.root / "runs" / "r1" / "run_manifest.json"

    def check() -> None:
        stages = json.loads(manifest.read_text())["stages"]
        assert stages["fetch"]["status"] == "failed" and stages["fetch"]["exit_code"] == 4, stages
        assert "a0.png" in stages["fetch"]["error"], stages
        assert tree(w.root / "runs" / "r1") == {"run_manifest.json"}
    return Case(["run", "--dataset-dir", str(src), "--pretrain-weights", "none", "--output-dir", str(w.root / "runs"),
                 "--run-name", "r1"], 4, "a0.png", check=check)


def endpoint_password_masked(w: Workspace) -> Case:  # 13
    return Case(["fetch", "--minio-bucket", "data", "--minio-prefix", "a", "--data-dir", str(w.root / "out")], 5,
                "S3 http://***@127.0.0.1:9 | cannot reach the endpoint",
                env={"MINIO_ENDPOINT": "http://bob:hunter2-pw@127.0.0.1:9", "MINIO_ACCESS_KEY": "bob",
                     "MINIO_SECRET_KEY": "hunter3-pw", "RFDETR_TRAINER_DATA__MINIO__RETRIES": "0"},
                not_in_output=("hunter2-pw", "hunter3-pw"))


def merge_follows_umask(w: Workspace) -> Case:  # 14
    out = w.root / "out"

    def check() -> None:
        assert mode(out) == 0o775 and mode(out / "train") == 0o775, oct(mode(out))
        for name in ("dataset_manifest.json", "train/_annotations.coco.json"):
            assert mode(out / name) == 0o664, (name, oct(mode(out / name)))
    return Case(["merge", str(w.dataset()), "-o", str(out), "--no-links"], 0, None, check=check, how="umask",
                umask=0o002)


def predict_follows_umask(w: Workspace) -> Case:  # 14
    out = w.root / "P"

    def check() -> None:
        assert mode(out) == 0o775 and mode(out / "images") == 0o775, oct(mode(out))
        for name in ("coco_results.json", "predictions.coco.json", "grid.jpg"):
            assert mode(out / name) == 0o664, (name, oct(mode(out / name)))
    return Case(["predict", "--checkpoint", str(w.checkpoint), "--input", str(w.dataset() / "test"),
                 "--output", str(out)], 0, None, check=check, how="umask", umask=0o002)


ROWS = [
    pytest.param(export_bad_image, id="1-export-image-not-an-image"),
    pytest.param(export_missing_image, id="1-export-image-missing"),
    pytest.param(export_parity_failure, id="1-export-parity-failure-keeps-verified-model"),
    pytest.param(merge_text_as_image, id="2-merge-text-renamed-png"),
    pytest.param(merge_zero_byte_image, id="2-merge-zero-byte-image"),
    pytest.param(merge_unreadable_image, id="2-merge-unreadable-image"),
    pytest.param(merge_null_bbox, id="2-merge-null-bbox-dropped-with-warning"),
    pytest.param(merge_null_bbox_strict, id="2-merge-null-bbox-strict"),
    pytest.param(merge_counts_from_written_files, id="3-merge-counts-what-is-written"),
    pytest.param(merge_unknown_category, id="4-merge-unknown-category-warns"),
    pytest.param(merge_unknown_category_strict, id="4-merge-unknown-category-strict"),
    pytest.param(merge_duplicate_class_name, id="4-merge-duplicate-class-name-warns"),
    pytest.param(merge_drop_unknown_class, id="4-merge-drop-rename-unknown-class-warns"),
    pytest.param(merge_drop_unknown_class_strict, id="4-merge-drop-unknown-class-strict"),
    pytest.param(merge_unused_class_map_entry, id="4-merge-unused-class-map-entry"),
    pytest.param(debug_keeps_exit_code, id="5-debug-keeps-exit-code"),
    pytest.param(env_file_not_utf8, id="6-env-file-not-utf8"),
    pytest.param(env_variable_not_json, id="6-env-variable-not-json"),
    pytest.param(dotenv_variable_not_json, id="6-dotenv-variable-not-json"),
    pytest.param(unreadable_annotation_file, id="6-unreadable-annotation-file"),
    pytest.param(train_devices_not_a_count, id="6-train-devices-abc"),
    pytest.param(train_cuda_without_gpu, id="6-train-device-cuda-without-gpu"),
    pytest.param(predict_on_non_image, id="6-predict-non-image"),
    pytest.param(predict_folder_with_broken_image, id="6-predict-folder-with-broken-image"),
    pytest.param(env_file_missing, id="7-env-file-missing"),
    pytest.param(env_file_is_folder, id="7-env-file-folder"),
    pytest.param(split_nan, id="7-split-nan"),
    pytest.param(split_error_names_split, id="8-split-error-names-split"),
    pytest.param(class_map_bad_yaml, id="8-class-map-bad-yaml-one-line"),
    pytest.param(unreadable_source_without_links, id="8-unreadable-source-no-links"),
    pytest.param(predict_missing_input_before_model, id="9-predict-checks-input-before-model"),
    pytest.param(export_unwritable_output_before_model, id="9-export-checks-output-before-model"),
    pytest.param(silent_cvat_server, id="10-silent-cvat-server"),
    pytest.param(stale_merge_temporaries, id="11-stale-merge-temporaries-removed"),
    pytest.param(export_new_folder_not_left, id="12-failed-export-leaves-no-folder"),
    pytest.param(failed_train_leaves_no_run_folder, id="12-failed-train-leaves-no-run-folder"),
    pytest.param(failed_run_stage_is_recorded, id="12-failed-run-stage-recorded"),
    pytest.param(endpoint_password_masked, id="13-endpoint-userinfo-masked"),
    pytest.param(merge_follows_umask, id="14-merge-follows-umask"),
    pytest.param(predict_follows_umask, id="14-predict-follows-umask"),
]

@pytest.mark.parametrize("row", ROWS)
def test_bad_input(row, request, monkeypatch):
    w = Workspace(request)
    try:
        case = row(w)
        started = time.monotonic()
        out = run(case, w, monkeypatch)
        elapsed = time.monotonic() - started
        everything = out.stdout + out.stderr
        assert out.code == case.code, everything
        assert case.code in EXIT_CODES
        errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        if case.line is None:
            assert errors == [], out.stderr
        else:
            assert len(errors) == 1, out.stderr
            for word in case.line.split(" | "):
                assert word in errors[0], (word, errors[0])
            assert out.stdout == "", out.stdout  # stdout is for results only
        assert ("Traceback (most recent call last)" in out.stderr) == case.traceback, out.stderr
        for text in case.stderr:
            assert text in " ".join(out.stderr.split()), (text, out.stderr)
        for text in case.not_in_output:
            assert text not in everything, (text, everything)
        if case.max_seconds is not None:
            assert elapsed < case.max_seconds, elapsed
        if case.heavy_modules is not None:
            heavy = json.loads(out.stderr.rsplit("HEAVY_MODULES=", 1)[1].splitlines()[0])
            assert bool(heavy) == case.heavy_modules, heavy  # paths are checked before the model loads
        case.check()
    finally:
        w.close()
