"""``rfdetr-trainer inspect``: rich report on stdout, --json for machines, exit 4 on errors (or warnings, --strict)."""

from __future__ import annotations

import json

import pytest
from support.coco_fixtures import Img, ann, write_dataset
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app

runner = CliRunner()


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write_dataset(
        tmp_path / "ds",
        {
            "train": [Img("a.png", [ann("car"), ann("dog")], color=(1, 1, 1)), Img("b.png", [], color=(2, 1, 1))],
            "valid": [Img("c.png", [ann("car")], color=(3, 1, 1))],
            "test": [Img("d.png", [ann("dog")], color=(4, 1, 1))],
        },
    )


def test_report_shows_splits_classes_and_findings(dataset):
    result = runner.invoke(app, ["inspect", str(dataset)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for needle in ("Splits", "Classes", "car", "dog", "image_unannotated", "OK"):
        assert needle in out


def test_json_output(dataset):
    result = runner.invoke(app, ["inspect", str(dataset), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["layout"] == "rfdetr" and data["ok"] is True
    assert data["counts"]["splits"]["train"] == {"images": 2, "annotations": 2, "background": 1,
                                                 "classes": {"car": 1, "dog": 1}}
    assert data["finding_counts"] == {"image_unannotated": 1}


def test_errors_exit_4_with_the_report_still_printed(dataset):
    (dataset / "valid" / "c.png").unlink()
    result = runner.invoke(app, ["inspect", str(dataset), "--json"])
    assert result.exit_code == 4
    assert json.loads(result.stdout)["finding_counts"]["image_missing"] == 1
    assert "valid/_annotations.coco.json id 1" in result.stderr


def test_strict_turns_warnings_into_failure(dataset):
    path = dataset / "train" / "_annotations.coco.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["bbox"] = [15, 2, 10, 5]
    path.write_text(json.dumps(data))
    assert runner.invoke(app, ["inspect", str(dataset)]).exit_code == 0
    strict = runner.invoke(app, ["inspect", str(dataset), "--strict"])
    assert strict.exit_code == 4
    assert "box_outside" in strict.stderr and "FAILED" in strict.stdout


def test_not_a_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["inspect", str(tmp_path / "empty")])
    assert result.exit_code == 4
    assert "no COCO dataset found" in result.stderr and "Traceback" not in result.stderr
