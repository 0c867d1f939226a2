"""Nothing is dropped silently (issue 8, deliverable 3): merge, fetch and train fail with exit 4 and one line
giving the count and the first files; ``--skip-missing`` drops those images with one warning and lists each in the
manifest; camera JPEGs with data after the end marker pass; EXIF-rotated images are written upright. YOLO sources
(Ultralytics ``data.yaml``, CVAT "YOLO 1.1") are held to the same rules as COCO ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.coco_fixtures import jpeg_bytes
from support.export_fixtures import N_ANNS, N_IMAGES, cvat_yolo11, roboflow_coco_root, ultralytics_yolo
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app

runner = CliRunner()


def _first(src: Path) -> Path:
    """The first image of a dataset, whichever layout holds it."""
    for folder in (src / "images", src / "images" / "train", src / "obj_train_data"):
        if folder.is_dir() and any(p.suffix == ".jpg" for p in folder.iterdir()):
            return sorted(p for p in folder.iterdir() if p.suffix == ".jpg")[0]
    raise AssertionError(f"no images in {src}")


def _remove(src: Path) -> None:
    _first(src).unlink()


def _garbage(src: Path) -> None:
    _first(src).write_bytes(b"<html>403 Forbidden</html>")


def _cut(src: Path) -> None:
    p = _first(src)
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def _resize(src: Path) -> None:
    p = _first(src)
    p.write_bytes(jpeg_bytes((50, 50), (9, 9, 9)))


# (damage, finding code in the line): each makes one of the 7 images unusable.
BAD = [(_remove, "image_missing"), (_garbage, "image_unreadable"), (_cut, "image_truncated"),
       (_resize, "image_size_mismatch")]
# The same over the layouts: a YOLO image's size is its header's (no resize case), and only a listed image can be
# missing (CVAT's train.txt; an Ultralytics split is the images its folder holds).
LAYOUT_BAD = [("roboflow-coco", roboflow_coco_root, d, c) for d, c in BAD] + [
    ("ultralytics-yolo", ultralytics_yolo, _garbage, "image_unreadable"),
    ("ultralytics-yolo", ultralytics_yolo, _cut, "image_truncated"),
    ("cvat-yolo11", cvat_yolo11, _remove, "image_missing"),
    ("cvat-yolo11", cvat_yolo11, _garbage, "image_unreadable"),
    ("cvat-yolo11", cvat_yolo11, _cut, "image_truncated"),
]
LAYOUT_IDS = [f"{layout}-{code}" for layout, _, _, code in LAYOUT_BAD]


@pytest.mark.parametrize(("layout", "build", "damage", "code"), LAYOUT_BAD, ids=LAYOUT_IDS)
@pytest.mark.parametrize("command", ["merge", "fetch"])
def test_unusable_image_fails_with_count_and_file(tmp_path, monkeypatch, layout, build, damage, code, command):
    monkeypatch.chdir(tmp_path)
    src = build(tmp_path / "raccoon")
    name = _first(src).name
    damage(src)
    args = [command, str(src), "-o", str(tmp_path / "out")] if command == "merge" else [
        command, "--dataset-dir", str(src), "-o", str(tmp_path / "out")]
    result = runner.invoke(app, args)
    assert result.exit_code == 4, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert f"1 of {N_IMAGES} images can't be used ({code} 1)" in errors[0] and name in errors[0]
    assert "--skip-missing" in result.stderr  # the hint
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("layout", "build", "damage", "code"), LAYOUT_BAD, ids=LAYOUT_IDS)
@pytest.mark.parametrize("command", ["merge", "fetch"])
def test_skip_missing_drops_warns_once_and_lists_each(tmp_path, monkeypatch, layout, build, damage, code, command):
    monkeypatch.chdir(tmp_path)
    src = build(tmp_path / "raccoon")
    name = _first(src).name
    damage(src)
    args = [command, str(src)] if command == "merge" else [command, "--dataset-dir", str(src)]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "out"), "--skip-missing"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count(f"--skip-missing dropped 1 of {N_IMAGES} images") == 1
    manifest = json.loads((tmp_path / "out" / "dataset_manifest.json").read_text())
    assert [s["code"] for s in manifest["skipped_images"]] == [code]
    assert name in manifest["skipped_images"][0]["file"]
    assert manifest["counts"]["images"] == N_IMAGES - 1
    assert manifest["totals"] == {"images": N_IMAGES, "annotations": N_ANNS}
    assert f"kept: {N_IMAGES - 1} / {N_IMAGES} images" in result.stderr


@pytest.mark.parametrize(("layout", "build", "damage", "code"), LAYOUT_BAD, ids=LAYOUT_IDS)
def test_inspect_reports_the_unusable_image(tmp_path, monkeypatch, layout, build, damage, code):
    """``inspect`` lists the image as a finding of the dataset, the same for every layout."""
    monkeypatch.chdir(tmp_path)
    src = build(tmp_path / "raccoon")
    damage(src)
    result = runner.invoke(app, ["inspect", str(src), "--json"])
    assert "Traceback" not in result.output and "not a readable image" not in result.output
    assert result.exit_code == 4, result.output  # an error finding, as for a COCO source
    report = json.loads(result.stdout)
    assert report["finding_counts"][code] == 1, report["finding_counts"]
    assert report["counts"]["images"] == N_IMAGES, report["counts"]


def test_skip_missing_from_the_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = roboflow_coco_root(tmp_path / "raccoon")
    _remove(src)
    (tmp_path / "cfg.yaml").write_text("data:\n  skip_missing: true\n")
    result = runner.invoke(app, ["merge", str(src), "-o", str(tmp_path / "out"), "--config",
                                 str(tmp_path / "cfg.yaml")])
    assert result.exit_code == 0, result.output


def test_camera_jpegs_with_data_after_the_end_marker_pass(tmp_path, monkeypatch):
    """A phone's "motion photo": the video follows the JPEG's FFD9; Pillow decodes the image fine."""
    monkeypatch.chdir(tmp_path)
    src = roboflow_coco_root(tmp_path / "raccoon")
    for p in (src / "images").iterdir():
        p.write_bytes(p.read_bytes() + b"\x00\x00\x00\x18ftypmp42" + b"\x42" * 2000)
    assert runner.invoke(app, ["inspect", str(src)]).exit_code == 0
    result = runner.invoke(app, ["merge", str(src), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "dataset_manifest.json").read_text())["counts"]["images"] == N_IMAGES


def test_exif_rotated_image_is_written_upright_with_its_box_on_the_object(tmp_path, monkeypatch):
    """A camera JPEG stored 48x64 (portrait sensor read-out) with EXIF orientation 6; CVAT, Roboflow and browsers
    show it 64x48, which is the size and the frame the JSON's box was drawn in."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    src = roboflow_coco_root(tmp_path / "raccoon")
    data = json.loads((src / "_annotations.coco.json").read_text())
    img = data["images"][0]
    img["width"], img["height"] = 64, 48
    # The object, upright: x 40..56, y 8..24. Orientation 6 shows stored pixel (x, y) at (H-1-y, x), so it is
    # stored at x 8..24, y 7..23 of the 48x64 file.
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != img["id"]]
    data["annotations"].append({"id": 99, "image_id": img["id"], "category_id": 1, "bbox": [40, 8, 16, 16],
                                "area": 256, "segmentation": [], "iscrowd": 0})
    (src / "_annotations.coco.json").write_text(json.dumps(data))
    (src / "images" / img["file_name"]).write_bytes(jpeg_bytes((48, 64), (0, 0, 0), orientation=6,
                                                               box=(8, 7, 24, 23)))
    report = runner.invoke(app, ["inspect", str(src), "--json"])
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["finding_counts"]["exif_rotated"] == 1
    result = runner.invoke(app, ["merge", str(src), "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    for split in ("train", "valid", "test"):
        coco = json.loads((out / split / "_annotations.coco.json").read_text())
        rec = next((i for i in coco["images"] if i["file_name"] == img["file_name"]), None)
        if rec:
            break
    with Image.open(out / split / rec["file_name"]) as written:
        assert written.size == (64, 48) and written.getexif().get(0x0112, 1) == 1
        box = next(a["bbox"] for a in coco["annotations"] if a["image_id"] == rec["id"])
        x, y, w, h = box
        inside = written.convert("L").crop((x + 3, y + 3, x + w - 3, y + h - 3))
        outside = written.convert("L").crop((0, 30, 30, 48))
        assert min(inside.getdata()) > 200 and max(outside.getdata()) < 60  # the box sits on the white object


@pytest.mark.parametrize(("damage", "code"), BAD, ids=[b[1] for b in BAD])
def test_train_on_a_split_folder_fails_before_training(tmp_path, monkeypatch, damage, code):
    """A dataset used in place (train/valid/test already) is checked the same way before any model is built."""
    from support.export_fixtures import roboflow_coco_splits

    monkeypatch.chdir(tmp_path)
    src = roboflow_coco_splits(tmp_path / "rf")
    first = sorted((src / "train").glob("*.jpg"))[0]
    damage_target = tmp_path / "one"
    (damage_target / "images").mkdir(parents=True)
    first.rename(damage_target / "images" / first.name)
    damage(damage_target)
    moved = damage_target / "images" / first.name
    if moved.exists():
        moved.rename(first)
    result = runner.invoke(app, ["train", "--dataset-dir", str(src), "--pretrain-weights", "none", "--epochs", "1",
                                 "--device", "cpu", "--output-dir", str(tmp_path / "runs")])
    assert result.exit_code == 4, result.output
    assert f"1 of {N_IMAGES} images can't be used ({code} 1)" in result.stderr and first.name in result.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.pth"))
