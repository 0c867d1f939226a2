"""Every layout is detected and read in full: rfdetr, CVAT (per-subset and flat images), plain COCO, zips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.coco_fixtures import Img, ann, class_counts, load_split, write_dataset

from rfdetr_trainer.coco.layout import detect_layout, open_dataset
from rfdetr_trainer.coco.merge import MergeOptions, merge_datasets
from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.errors import DatasetError

SUBSETS = {
    "Train": [Img(f"t{i}.png", [ann("car"), ann("dog")], color=(i, 9, 9)) for i in range(4)],
    "Validation": [Img("v0.png", [ann("car")], color=(50, 1, 1)), Img("v1.png", [ann("dog")], color=(51, 1, 1))],
    "Test": [Img("x0.png", [ann("dog")], color=(60, 1, 1))],
}
RFDETR_SUBSETS = {"train": SUBSETS["Train"], "valid": SUBSETS["Validation"], "test": SUBSETS["Test"]}


@pytest.mark.parametrize(
    ("layout", "as_zip", "subsets", "expected"),
    [
        ("rfdetr", False, RFDETR_SUBSETS, "rfdetr"),
        ("rfdetr", True, RFDETR_SUBSETS, "rfdetr"),
        ("cvat", False, SUBSETS, "cvat"),
        ("cvat", True, SUBSETS, "cvat"),
        ("cvat-flat", False, SUBSETS, "cvat"),
        ("cvat-flat", True, SUBSETS, "cvat"),
        ("coco", False, {"train2017": SUBSETS["Train"], "val2017": SUBSETS["Validation"],
                         "test2017": SUBSETS["Test"]}, "coco"),
        ("coco", True, {"train": SUBSETS["Train"], "val": SUBSETS["Validation"], "test": SUBSETS["Test"]}, "coco"),
    ],
)
def test_every_layout_is_detected_and_merged_in_full(tmp_path, layout, as_zip, subsets, expected):
    src = write_dataset(tmp_path / "src", subsets, layout, as_zip=as_zip)
    assert detect_layout(src) == expected
    out = tmp_path / "out"
    result = merge_datasets([SourceRef(src, "s")], out, MergeOptions())
    # Subsets keep their split: Train/train2017 -> train, Validation/val -> valid, Test -> test.
    assert result.counts["splits"]["train"]["images"] == 4
    assert result.counts["splits"]["valid"]["images"] == 2
    assert result.counts["splits"]["test"]["images"] == 1
    assert class_counts(out) == {"car": 5, "dog": 6}
    for split in ("train", "valid", "test"):
        for img in load_split(out, split)["images"]:
            assert (out / split / img["file_name"]).is_file()
    assert not [f for f in result.findings if f.code == "image_missing"]


def test_zip_wrapped_in_a_folder_is_read(tmp_path):
    import zipfile

    src = write_dataset(tmp_path / "inner", RFDETR_SUBSETS, "rfdetr")
    archive = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in src.rglob("*"):
            if p.is_file():
                zf.write(p, f"mydata/{p.relative_to(src)}")
    assert detect_layout(archive) == "rfdetr"
    assert len(open_dataset(archive).subsets) == 3


def test_loose_json_with_images_beside_it(tmp_path):
    write_dataset(tmp_path / "src", {"default": SUBSETS["Train"]}, "coco")
    loose = tmp_path / "src" / "annotations" / "default.json"
    moved = tmp_path / "src" / "images" / "labels.json"
    moved.write_bytes(loose.read_bytes())
    assert detect_layout(moved) == "coco"
    ds = open_dataset(moved)
    assert ds.resolve_image(ds.subsets[0], "t0.png") == "t0.png"  # the tree is rooted at the file


def test_cvat_subset_folder_wins_over_flat(tmp_path):
    src = write_dataset(tmp_path / "src", {"default": SUBSETS["Train"]}, "cvat")
    ds = open_dataset(src)
    assert ds.resolve_image(ds.subsets[0], "t1.png") == "images/default/t1.png"
    assert ds.resolve_image(ds.subsets[0], "../escape.png") is None


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no COCO dataset found"),
        ({"readme.txt": b"hello"}, "no COCO dataset found"),
        ({"train/_annotations.coco.json": b""}, "_annotations.coco.json:1:1: malformed JSON"),
        ({"annotations/instances_default.json": b"\n  [1, 2]"}, "instances_default.json:2:3: malformed JSON"),
    ],
)
def test_no_dataset_or_malformed_start_names_path_and_position(tmp_path, files, message):
    root = tmp_path / "ds"
    root.mkdir()
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    with pytest.raises(DatasetError) as info:
        detect_layout(root)
    assert message in info.value.message
    assert str(root) in info.value.message


def test_missing_path_and_bad_zip(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        detect_layout(tmp_path / "nope")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable zip"):
        detect_layout(bad)


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ('{"images": [], "categories": [], "annotations": [{"id": 1,', ":1:"),
        ('{"images": [], "categories": []\n, "annotations": [{"id": 1} {"id": 2}]}', ":2:"),
        ('{"images": [}', ":1:13"),
        ('{"images": [], "categories": [], "annotations": []} trailing', ":1:53"),
        ('{"images": [], "categories": [], "annotations": [1, 2,]}', ":1:"),
        ('{"images": [], "categories": []', ":1:"),
    ],
)
def test_malformed_json_in_merge_is_one_line_with_file_and_position(tmp_path, text, position):
    root = tmp_path / "ds" / "train"
    root.mkdir(parents=True)
    (root / "_annotations.coco.json").write_text(text)
    with pytest.raises(DatasetError) as info:
        merge_datasets([SourceRef(root.parent, "s")], tmp_path / "out", MergeOptions())
    msg = info.value.message
    assert "_annotations.coco.json" + position in msg and "malformed JSON" in msg
    assert "\n" not in msg
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"images": [], "annotations": []}, "no 'categories' list"),
        ({"categories": [], "annotations": []}, "no 'images' list"),
        ({"images": {}, "categories": []}, "'images' is not a list"),
        ({"images": [], "categories": [{"id": 1}]}, "category has no name"),
        ({"images": [], "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}, "id 1: duplicate category"),
        (
            {"images": [{"id": 1, "file_name": "a.png", "width": 2, "height": 2}] * 2, "categories": []},
            "id 1: duplicate image id",
        ),
    ],
)
def test_structurally_broken_files_raise_dataset_error(tmp_path, data, message):
    root = tmp_path / "ds" / "train"
    root.mkdir(parents=True)
    (root / "_annotations.coco.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError) as info:
        merge_datasets([SourceRef(root.parent, "s")], tmp_path / "out", MergeOptions(copy_images=False))
    assert message in info.value.message
    assert "_annotations.coco.json" in info.value.message


def test_source_ref_path_may_be_a_string_like_path(tmp_path):
    src = write_dataset(tmp_path / "src", RFDETR_SUBSETS)
    result = merge_datasets([SourceRef(Path(str(src)), "s")], tmp_path / "out", MergeOptions())
    assert result.counts["images"] == 7
