"""inspect: every finding, counted and listed with its file and id; strict; JSON form; never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.coco_fixtures import Img, ann, jpeg_bytes, write_dataset

from rfdetr_trainer.coco.schema import SEVERITY
from rfdetr_trainer.errors import DatasetError
from rfdetr_trainer.services.inspect import inspect_dataset, raise_for_report

TRAIN_JSON = "train/_annotations.coco.json"


def _edit(root: Path, split: str, fn) -> None:
    path = root / split / "_annotations.coco.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def _set(**kw):
    def fn(data):
        for path, value in kw.items():
            kind, index, key = path.split("__")
            data[kind][int(index)][key] = value

    return fn


def _append(kind: str, record: dict):
    return lambda data: data[kind].append(record)


def _truncate(root: Path) -> None:
    p = root / "train" / "a.png"
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])  # a download cut off halfway


def _exif_rotated(root: Path) -> None:
    """b.png becomes a camera JPEG stored 16x20 with EXIF orientation 6: viewers (and the JSON) say 20x16."""
    (root / "train" / "b.png").write_bytes(jpeg_bytes((16, 20), (2, 0, 0), orientation=6))


def _roboflow_root(data: dict) -> None:
    data["categories"].insert(0, {"id": 0, "name": "things", "supercategory": "none"})
    for cat in data["categories"][1:]:
        cat["supercategory"] = "things"


def _garbage(root: Path) -> None:
    (root / "train" / "b.png").write_bytes(b"this is not an image")


def _remove(root: Path) -> None:
    (root / "train" / "c.png").unlink()


def _empty_test(root: Path) -> None:
    _edit(root, "test", lambda d: (d["images"].clear(), d["annotations"].clear()))


# Each case: how to damage the clean fixture, the finding code expected, the file it names, the id it names.
CASES = [
    ("bad_record", lambda r: _edit(r, "train", _set(images__1__width="wide")), TRAIN_JSON, 2),
    ("box_invalid", lambda r: _edit(r, "train", _set(annotations__0__bbox=[1, 2, 3])), TRAIN_JSON, 1),
    ("unknown_image", lambda r: _edit(r, "train", _set(annotations__0__image_id=99)), TRAIN_JSON, 1),
    ("unknown_category", lambda r: _edit(r, "train", _set(annotations__1__category_id=42)), TRAIN_JSON, 2),
    ("duplicate_image_id", lambda r: _edit(r, "train", _set(images__1__id=1)), TRAIN_JSON, 1),
    ("duplicate_annotation_id", lambda r: _edit(r, "train", _set(annotations__1__id=1)), TRAIN_JSON, 1),
    (
        "duplicate_category_id",
        lambda r: _edit(r, "train", _append("categories", {"id": 1, "name": "bus"})),
        TRAIN_JSON,
        1,
    ),
    ("image_missing", _remove, TRAIN_JSON, 3),
    ("image_unreadable", _garbage, TRAIN_JSON, 2),
    ("image_truncated", _truncate, TRAIN_JSON, 1),
    ("exif_rotated", _exif_rotated, TRAIN_JSON, 2),
    ("category_parent_dropped", lambda r: _edit(r, "train", _roboflow_root), TRAIN_JSON, 0),
    ("empty_split", _empty_test, "test/_annotations.coco.json", None),
    ("box_nonpositive", lambda r: _edit(r, "train", _set(annotations__0__bbox=[1, 1, 0, 4])), TRAIN_JSON, 1),
    ("box_outside", lambda r: _edit(r, "train", _set(annotations__0__bbox=[15, 2, 10, 5])), TRAIN_JSON, 1),
    ("image_size_mismatch", lambda r: _edit(r, "train", _set(images__0__width=640)), TRAIN_JSON, 1),
    (
        "category_unused",
        lambda r: [_edit(r, s, _append("categories", {"id": 3, "name": "bus"})) for s in ("train", "valid", "test")],
        None,
        "bus",
    ),
    (
        "class_missing_in_train",
        lambda r: _edit(r, "valid", lambda d: (d["categories"].append({"id": 3, "name": "bus"}),
                                               d["annotations"].append({**d["annotations"][0], "id": 9,
                                                                        "category_id": 3}))),
        TRAIN_JSON,
        "bus",
    ),
    ("image_unannotated", lambda r: _edit(r, "train", lambda d: d["annotations"].pop()), TRAIN_JSON, None),
]


def test_clean_dataset_has_no_problems(simple_rfdetr):
    report = inspect_dataset(simple_rfdetr)
    assert report.ok and not report.errors and not report.warnings
    assert report.layout == "rfdetr"
    assert report.counts["splits"]["train"] == {
        "images": 3, "annotations": 4, "background": 0, "classes": {"car": 2, "person": 2}
    }
    assert report.counts["classes"] == {"car": 3, "person": 3}
    raise_for_report(report, strict=True)


def test_every_code_has_a_case():
    tested = {c[0] for c in CASES} | {"split_group_fallback", "class_map_unused", "split_adjusted",
                                      "duplicate_image", "duplicate_annotation", "file_renamed",
                                      "duplicate_category_name"}  # tests/cli/test_bad_input.py
    assert tested == set(SEVERITY)  # merge-only codes are covered in test_merge.py / test_split.py


@pytest.mark.parametrize(("code", "damage", "file", "ident"), CASES, ids=[c[0] for c in CASES])
def test_each_finding_is_reported_with_file_and_id(simple_rfdetr, code, damage, file, ident):
    damage(simple_rfdetr)
    report = inspect_dataset(simple_rfdetr)
    hits = [f for f in report.findings if f.code == code]
    assert len(hits) == 1, report.finding_counts()
    hit = hits[0]
    if file is not None:
        assert hit.file.endswith(file)
    assert hit.id == ident
    assert report.finding_counts()[code] == 1
    severity = SEVERITY[code]
    assert report.ok == (severity != "error")
    if severity == "error":
        with pytest.raises(DatasetError) as info:
            raise_for_report(report)
        assert code in info.value.message
    elif severity == "warning":
        raise_for_report(report)  # allowed without --strict
        with pytest.raises(DatasetError, match="strict"):
            raise_for_report(report, strict=True)
        assert not inspect_dataset(simple_rfdetr, strict=True).ok
    else:
        raise_for_report(report, strict=True)  # infos never fail


def test_box_fix_is_named_in_the_finding(simple_rfdetr):
    _edit(simple_rfdetr, "train", _set(annotations__0__bbox=[15, 2, 10, 5]))
    assert [f.action for f in inspect_dataset(simple_rfdetr, box_fix="clip").findings] == ["clipped"]
    assert [f.action for f in inspect_dataset(simple_rfdetr, box_fix="drop").findings] == ["dropped"]


def test_error_message_names_first_and_counts_the_rest(simple_rfdetr):
    _edit(simple_rfdetr, "train", _set(annotations__0__image_id=99, annotations__1__image_id=98))
    with pytest.raises(DatasetError) as info:
        raise_for_report(inspect_dataset(simple_rfdetr))
    assert "train/_annotations.coco.json id 1" in info.value.message
    assert "(and 1 more)" in info.value.message
    assert "inspect" in info.value.hint


def test_json_form_is_serialisable_and_complete(simple_rfdetr):
    _remove(simple_rfdetr)
    data = json.loads(json.dumps(inspect_dataset(simple_rfdetr).to_dict()))
    assert data["ok"] is False and data["errors"] == 1
    assert data["finding_counts"] == {"image_missing": 1}
    assert data["findings"][0]["severity"] == "error" and data["findings"][0]["id"] == 3


def test_inspect_skips_image_files_when_asked(simple_rfdetr):
    _garbage(simple_rfdetr)
    assert inspect_dataset(simple_rfdetr, check_images=False).ok


def test_inspect_reads_cvat_zip(tmp_path):
    src = write_dataset(tmp_path / "c", {"default": [Img("a.png", [ann("car")])]}, "cvat", as_zip=True)
    report = inspect_dataset(src)
    assert report.layout == "cvat" and report.ok
    assert report.counts["splits"]["default"]["images"] == 1


@pytest.mark.parametrize("text", ["", "{", '{"images": 1}', "[]", '{"images": [], "categories": [], "annotations": 5}'])
def test_malformed_input_is_a_dataset_error_not_a_traceback(simple_rfdetr, text):
    (simple_rfdetr / "train" / "_annotations.coco.json").write_text(text)
    with pytest.raises(DatasetError) as info:
        inspect_dataset(simple_rfdetr)
    assert "train/_annotations.coco.json" in info.value.message
