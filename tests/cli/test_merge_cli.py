"""``rfdetr-trainer merge``: thin command over the merge service; path last on stdout, errors as exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.coco_fixtures import Img, ann, class_counts, write_dataset
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app

runner = CliRunner()


def _imgs(prefix: str, n: int, cat: str, base: int) -> list[Img]:
    return [Img(f"{prefix}{i}.png", [ann(cat)], color=(base + i, 3, 3)) for i in range(n)]


@pytest.fixture
def two_sources(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = write_dataset(tmp_path / "cvat_a", {"default": _imgs("a", 5, "car", 0) + _imgs("t", 2, "tree", 90)}, "cvat")
    b = write_dataset(tmp_path / "rf_b", {"train": _imgs("b", 3, "automobile", 30), "valid": _imgs("v", 1, "car", 60),
                                          "test": _imgs("x", 1, "car", 70)}, "rfdetr", as_zip=True)
    return a, b


def test_merge_prints_output_dir_last_and_applies_flags(tmp_path, two_sources):
    a, b = two_sources
    result = runner.invoke(app, ["merge", str(a), str(b), "--output-dir", str(tmp_path / "out"),
                                 "--rename", "automobile=car", "--drop", "tree", "--split", "0.6", "0.2", "0.2",
                                 "--split-seed", "5"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "out")
    assert class_counts(tmp_path / "out") == {"car": 10}
    manifest = json.loads((tmp_path / "out" / "dataset_manifest.json").read_text())
    assert manifest["split"] == {"mode": "ratio", "ratios": [0.6, 0.2, 0.2], "seed": 5, "group_by_source": False}
    assert [s["name"] for s in manifest["sources"]] == ["cvat_a", "rf_b"]
    assert manifest["dropped"] == {"class_map_drop": 2}


def test_merge_json_output_and_annotations_only(tmp_path, two_sources):
    a, b = two_sources
    result = runner.invoke(app, ["merge", str(a), str(b), "-o", str(tmp_path / "out"), "--no-images", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["images"] == 12 and data["annotations"] == 12
    assert set(data["splits"]) == {"train", "valid", "test"}
    assert not list((tmp_path / "out").rglob("*.png"))


def test_merge_class_map_file_and_box_fix(tmp_path, two_sources):
    a, b = two_sources
    (tmp_path / "map.json").write_text('{"automobile": "car", "tree": null}')
    result = runner.invoke(app, ["merge", str(a), str(b), "-o", str(tmp_path / "out"), "--class-map",
                                 str(tmp_path / "map.json"), "--box-fix", "drop"])
    assert result.exit_code == 0, result.output
    assert class_counts(tmp_path / "out") == {"car": 10}
    bad = runner.invoke(app, ["merge", str(a), "-o", str(tmp_path / "o2"), "--box-fix", "squash"])
    assert bad.exit_code == 2


def _broken(tmp: Path) -> Path:
    (tmp / "broken" / "train").mkdir(parents=True)
    (tmp / "broken" / "train" / "_annotations.coco.json").write_text('{"images": [')
    return tmp / "broken"


@pytest.mark.parametrize(
    ("setup", "code", "needle"),
    [(lambda t: t / "missing", 4, "no such file"), (_broken, 4, "_annotations.coco.json:1:13: malformed JSON")],
)
def test_merge_errors_are_one_line_with_exit_code(tmp_path, monkeypatch, setup, code, needle):
    monkeypatch.chdir(tmp_path)
    src = setup(tmp_path)
    result = runner.invoke(app, ["merge", str(src), "-o", str(tmp_path / "out")])
    assert result.exit_code == code
    assert needle in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "out").exists()


def test_merge_refuses_foreign_output_folder(tmp_path, two_sources):
    a, _ = two_sources
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["merge", str(a), "-o", str(tmp_path / "docs")])
    assert result.exit_code == 11
    assert (tmp_path / "docs" / "notes.txt").read_text() == "keep me"


def test_merge_and_inspect_help_import_nothing_heavy():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from rfdetr_trainer.cli.app import app\n"
        "for cmd in ('merge', 'inspect'):\n"
        "    r = CliRunner().invoke(app, [cmd, '--help'])\n"
        "    assert r.exit_code == 0, r.output\n"
        "heavy = {'torch', 'rfdetr', 'supervision', 'cv2', 'pytorch_lightning'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_issue_8_fruit_and_raccoon_merge_in_full(tmp_path, monkeypatch):
    """The report's two exports: a CVAT 'COCO 1.0' saved flat and Roboflow's root file with images/ (and its
    synthetic root category). Every image of both is merged; the root is no class."""
    from support.export_fixtures import CLASSES, N_ANNS, N_IMAGES, cvat_coco_renamed_flat, roboflow_coco_root

    monkeypatch.chdir(tmp_path)
    fruit = cvat_coco_renamed_flat(tmp_path / "fruit")
    raccoon = roboflow_coco_root(tmp_path / "raccoon")
    # Different pixels for the second source, so no image is a byte-identical duplicate of the first's.
    from PIL import Image
    from support.coco_fixtures import jpeg_bytes

    for n, p in enumerate(sorted((raccoon / "images").iterdir())):
        with Image.open(p) as img:
            size = img.size
        p.write_bytes(jpeg_bytes(size, (250, 30 * n, 3)))
    result = runner.invoke(app, ["merge", str(fruit), str(raccoon), "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["images"], summary["annotations"]) == (2 * N_IMAGES, 2 * N_ANNS)
    assert summary["kept"] == f"{2 * N_IMAGES} / {2 * N_IMAGES} images, {2 * N_ANNS} / {2 * N_ANNS} annotations"
    assert list(summary["classes"]) == CLASSES and summary["dropped_categories"] == ["raccoons-fox"]
    assert summary["dropped"] == {}
