"""Real exports, as each tool lays them out, merge in full: exact image, annotation and class counts (issue 8)."""

from __future__ import annotations

import json
import zipfile

import pytest
from support.coco_fixtures import class_counts, load_split
from support.export_fixtures import CLASS_COUNTS, CLASSES, LAYOUTS, N_ANNS, N_IMAGES, SPLIT_COUNTS, roboflow_coco_root

from rfdetr_trainer.coco.layout import detect_layout, open_dataset
from rfdetr_trainer.coco.merge import MergeOptions, merge_datasets
from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.errors import DatasetError
from rfdetr_trainer.services.inspect import inspect_dataset


def _zip(folder, target):
    with zipfile.ZipFile(target, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    return target


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_export_merges_every_image_annotation_and_class(tmp_path, name, as_zip):
    build, layout, keeps_splits = LAYOUTS[name]
    src = build(tmp_path / name)
    if as_zip:
        src = _zip(src, tmp_path / f"{name}.zip")
    assert detect_layout(src) == layout
    result = merge_datasets([SourceRef(src, "s")], tmp_path / "out", MergeOptions())
    assert (result.counts["images"], result.counts["annotations"]) == (N_IMAGES, N_ANNS)
    assert result.totals["images"] == N_IMAGES
    assert result.counts["classes"] == CLASS_COUNTS
    assert class_counts(tmp_path / "out") == CLASS_COUNTS
    categories = load_split(tmp_path / "out", "train")["categories"]
    assert [c["name"] for c in categories] == CLASSES  # Roboflow's root is gone, nothing else is added
    if keeps_splits:
        assert {s: c["images"] for s, c in result.counts["splits"].items()} == SPLIT_COUNTS
    assert not [f for f in result.findings if f.severity == "error"], [f.line() for f in result.findings]
    for split in SPLIT_COUNTS:
        for img in load_split(tmp_path / "out", split)["images"]:
            assert (tmp_path / "out" / split / img["file_name"]).is_file()


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_inspect_reads_the_export_without_errors(tmp_path, name):
    build, layout, _ = LAYOUTS[name]
    report = inspect_dataset(build(tmp_path / name))
    assert report.layout == layout
    assert not report.errors, [f.line() for f in report.errors]
    assert (report.counts["images"], report.counts["annotations"]) == (N_IMAGES, N_ANNS)
    assert report.counts["classes"] == CLASS_COUNTS


def test_yolo_boxes_and_polygons_become_coco_pixels(tmp_path):
    for name in ("ultralytics-yolo", "ultralytics-yolo-seg"):
        LAYOUTS[name][0](tmp_path / name)
        merge_datasets([SourceRef(tmp_path / name, name)], tmp_path / f"out-{name}", MergeOptions())
    boxes = load_split(tmp_path / "out-ultralytics-yolo", "train")
    polys = load_split(tmp_path / "out-ultralytics-yolo-seg", "train")
    first = {i["file_name"]: i["id"] for i in boxes["images"]}["r0.jpg"]
    assert [a["bbox"] for a in boxes["annotations"] if a["image_id"] == first] == [[2, 2, 10, 8], [14, 10, 8, 6]]
    assert [a["category_id"] for a in boxes["annotations"] if a["image_id"] == first] == [1, 2]
    seg = [a for a in polys["annotations"] if a["image_id"] == first][0]
    assert seg["bbox"] == [2, 2, 10, 8]
    assert seg["segmentation"] == [[2, 2, 12, 2, 12, 10, 2, 10]]


def test_roboflow_root_category_is_dropped_and_listed(tmp_path):
    src = roboflow_coco_root(tmp_path / "raccoon")
    result = merge_datasets([SourceRef(src, "raccoon")], tmp_path / "out", MergeOptions())
    manifest = json.loads(result.manifest_path.read_text())
    assert [c["name"] for c in manifest["categories"]] == CLASSES
    assert [d["name"] for d in manifest["dropped_categories"]] == ["raccoons-fox"]
    assert manifest["dropped_categories"][0]["sources"] == ["raccoon"]
    root = [r for r in manifest["sources"][0]["class_map"] if r["old_id"] == 0][0]
    assert (root["new_id"], root["dropped_as"]) == (None, "parent_category")
    assert not [f for f in result.findings if f.code == "category_unused"]


def test_root_category_rule_is_rfdetrs(tmp_path):
    """Pinned to rfdetr 1.11's own filter on the same category lists (the COCO domain cannot import rfdetr)."""
    from rfdetr.datasets.coco import filter_parent_categories

    from rfdetr_trainer.coco.validate import parent_categories

    cases = [
        ([{"id": 0, "name": "eggs", "supercategory": "none"}, {"id": 1, "name": "stake", "supercategory": "eggs"},
          {"id": 2, "name": "tree", "supercategory": "eggs"}], {1, 2}),
        ([{"id": 0, "name": "eggs", "supercategory": "none"}, {"id": 1, "name": "stake", "supercategory": "eggs"}],
         {0, 1}),
        ([{"id": 1, "name": "person", "supercategory": "person"}, {"id": 2, "name": "vehicle", "supercategory": "none"},
          {"id": 3, "name": "car", "supercategory": "vehicle"}], {3}),
        ([{"id": 1, "name": "a", "supercategory": ""}, {"id": 2, "name": "b", "supercategory": ""}], set()),
        ([{"id": 1, "name": "a", "supercategory": "b"}, {"id": 2, "name": "b", "supercategory": "a"}], set()),
    ]
    for cats, annotated in cases:
        kept = [c["id"] for c in filter_parent_categories(cats, annotated)]
        dropped = {c["id"] for c in parent_categories(cats, annotated)}
        assert kept == [c["id"] for c in cats if c["id"] not in dropped]


def test_two_files_with_one_base_name_is_an_error_naming_both(tmp_path):
    src = roboflow_coco_root(tmp_path / "raccoon")
    images = sorted((src / "images").iterdir())
    (src / "a").mkdir()
    (src / "b").mkdir()
    images[0].rename(src / "a" / images[0].name)
    (src / "b" / images[0].name).write_bytes((src / "a" / images[0].name).read_bytes())
    with pytest.raises(DatasetError, match=rf"matches .*a/{images[0].name} and .*b/{images[0].name}"):
        merge_datasets([SourceRef(src, "s")], tmp_path / "out", MergeOptions())


def test_base_name_anywhere_and_windows_separators(tmp_path):
    src = roboflow_coco_root(tmp_path / "raccoon")
    (src / "deep" / "er").mkdir(parents=True)
    moved = sorted((src / "images").iterdir())[0]
    moved.rename(src / "deep" / "er" / moved.name)
    ds = open_dataset(src)
    assert ds.resolve_image(ds.subsets[0], moved.name) == f"deep/er/{moved.name}"
    assert ds.resolve_image(ds.subsets[0], f"C:\\Users\\me\\export\\{moved.name}") == f"deep/er/{moved.name}"


@pytest.mark.parametrize("name", ["ultralytics-yolo", "cvat-yolo-1.1", "roboflow-coco-root"])
def test_fetch_dataset_dir_prepares_the_export(tmp_path, name):
    from rfdetr_trainer.schemas.data import DataConfig
    from rfdetr_trainer.services.fetch import fetch

    src = LAYOUTS[name][0](tmp_path / name)
    data = DataConfig(local={"dataset_dirs": [src]}, output_dir=tmp_path / "prepared")
    result = fetch(data)
    assert result.dataset_dir == (tmp_path / "prepared").resolve() and not result.in_place
    assert (result.counts["images"], result.counts["annotations"]) == (N_IMAGES, N_ANNS)
    assert class_counts(result.dataset_dir) == CLASS_COUNTS
    assert result.to_dict()["kept"] == f"{N_IMAGES} / {N_IMAGES} images, {N_ANNS} / {N_ANNS} annotations"


@pytest.mark.parametrize(("line", "message"), [
    ("0 0.5 0.5 0.2", "expected 'class cx cy w h' or a polygon, got 3 numbers"),
    ("7 0.5 0.5 0.2 0.2", "class 7 is not in the 2 names"),
    ("car 0.5 0.5 0.2 0.2", "not a YOLO label line"),
])
def test_bad_yolo_label_line_names_file_and_line(tmp_path, line, message):
    src = LAYOUTS["ultralytics-yolo"][0](tmp_path / "y")
    label = src / "labels" / "train" / "r1.txt"
    label.write_text(label.read_text() + line + "\n")
    with pytest.raises(DatasetError, match=rf"labels/train/r1.txt:2: {message}"):
        merge_datasets([SourceRef(src, "s")], tmp_path / "out", MergeOptions())
