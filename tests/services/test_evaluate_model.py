"""A real tiny model through predict, evaluate and export --evaluate (shared session checkpoint)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from support.pycocotools_ref import pycocotools_metrics
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app
from rfdetr_trainer.errors import ExportError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(trained_run):
    return trained_run.checkpoints / "checkpoint_best_total.pth"


@pytest.fixture(scope="module")
def backend(checkpoint):
    from rfdetr_trainer.integrations.rfdetr.inference import load_backend

    return load_backend(checkpoint, device="cpu")


def test_no_detection_carries_a_class_the_model_was_not_trained_on(backend, tiny_dataset, tmp_path):
    from rfdetr_trainer.integrations.rfdetr.inference import open_image, preprocess
    from rfdetr_trainer.schemas import ValidationConfig
    from rfdetr_trainer.services.predict import predict

    image = sorted((tiny_dataset / "test").glob("*.jpg"))[0]
    x = preprocess(open_image(image), backend.resolution, backend.means, backend.stds)
    _, logits = backend.forward(x[None])
    assert logits.shape[-1] > len(backend.class_names) == 3  # the head has spare slots: the test means something
    result = predict(backend, tiny_dataset / "test", tmp_path / "pred", ValidationConfig(confidence_threshold=0.001))
    results = json.loads(result.results_path.read_text())
    gt = json.loads((tiny_dataset / "test" / "_annotations.coco.json").read_text())
    assert len(results) == 300 * len(gt["images"])  # the whole top-k, all of it on trained classes
    assert {r["category_id"] for r in results} <= {c["id"] for c in gt["categories"]}


def test_boxes_refer_to_the_upright_image_of_an_exif_rotated_file(backend, tiny_dataset, tmp_path):
    from rfdetr_trainer.integrations.rfdetr.inference import detect
    from rfdetr_trainer.schemas import ValidationConfig
    from rfdetr_trainer.services.predict import predict

    source = sorted((tiny_dataset / "test").glob("*.jpg"))[0]
    with Image.open(source) as img:
        upright = img.convert("RGB").resize((192, 112))
    folder = tmp_path / "in"
    folder.mkdir()
    upright.save(folder / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated, displayed upright: what a phone writes
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "rotated.png", exif=exif.tobytes())
    a, b = detect(backend, [folder / "upright.png", folder / "rotated.png"], threshold=0.001)
    assert (b.width, b.height) == (192, 112) and len(a.scores) == len(b.scores) > 0
    np.testing.assert_allclose(b.boxes_xyxy, a.boxes_xyxy, atol=1e-3)
    assert b.labels.tolist() == a.labels.tolist()
    # predict draws on, and records the size of, the upright picture
    out = predict(backend, folder, tmp_path / "pred", ValidationConfig(confidence_threshold=0.001))
    records = json.loads((out.output_dir / "predictions.coco.json").read_text())["images"]
    assert {(r["width"], r["height"]) for r in records} == {(192, 112)}
    for drawn in out.images_dir.glob("*.jpg"):
        assert Image.open(drawn).size == (192, 112)


def test_evaluate_command_writes_every_file(checkpoint, tiny_dataset, tmp_path):
    out = tmp_path / "ev"
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--dataset-dir",
                                      str(tiny_dataset), "--split", "test", "--output", str(out), "--errors", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out / "metrics.json")
    for name in ("metrics.json", "per_class.csv", "confusion_matrix.json", "confusion_matrix.png",
                 "confusion_matrix_normalized.png", "pr_curve.png", "f1_curve.png", "thresholds.json",
                 "coco_results.json", "errors/errors.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["class"] for r in metrics["per_class"]] == ["square", "circle", "triangle"]
    assert "AP50" in result.stderr and "triangle" in result.stderr  # the rich table
    stats, _per_class = pycocotools_metrics(tiny_dataset / "test" / "_annotations.coco.json", out / "coco_results.json")
    assert (metrics["mAP50_95"] or 0.0) == pytest.approx(max(stats[0], 0.0), abs=1e-4)
    errors = json.loads((out / "errors" / "errors.json").read_text())
    assert len(errors["images"]) <= 2 and all((out / "errors" / e["drawn"]).is_file() for e in errors["images"])
    matrix = json.loads((out / "confusion_matrix.json").read_text())
    assert matrix["labels"][-1] == "background" and len(matrix["matrix"]) == 4


def test_bad_split_is_one_line_naming_the_file(checkpoint, tiny_dataset, tmp_path):
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--dataset-dir",
                                      str(tiny_dataset), "--split", "nope", "--output", str(tmp_path / "x")])
    assert result.exit_code == 4 and "nope/_annotations.coco.json: missing" in result.stderr


@pytest.fixture(scope="module")
def exported(trained_run, checkpoint, tiny_dataset, tmp_path_factory):
    from rfdetr_trainer.integrations.rfdetr.inference import load_model
    from rfdetr_trainer.schemas import ExportConfig
    from rfdetr_trainer.services.export import export

    out = tmp_path_factory.mktemp("export")
    config = ExportConfig(format=["onnx", "torchscript"], evaluate=True, dynamic_batch=True)
    image = sorted((tiny_dataset / "test").glob("*.jpg"))[0]
    result = export(load_model(checkpoint), config, out / "export", sample_image=image, dataset_dir=tiny_dataset,
                    split="test", evaluation_root=out / "evaluation")
    yield result, out
    shutil.rmtree(out, ignore_errors=True)


def test_export_evaluates_every_file_side_by_side(exported):
    result, out = exported
    rows = {r["format"]: r for r in result.evaluation}
    assert set(rows) == {"pytorch", "onnx", "torchscript"}
    assert all(abs(r["drop"]) <= 0.01 for r in rows.values())
    for fmt in ("onnx", "torchscript"):
        assert (out / "evaluation" / f"test-{fmt}" / "metrics.json").is_file()


def test_exported_files_carry_class_names_resolution_and_thresholds(exported):
    from rfdetr_trainer.integrations.rfdetr.export_meta import read_onnx_metadata
    from rfdetr_trainer.integrations.rfdetr.inference import load_backend

    result, out = exported
    meta = read_onnx_metadata(result.files["onnx"])
    assert json.loads(meta["class_names"]) == ["square", "circle", "triangle"] and meta["resolution"] == "224"
    thresholds = json.loads((out / "evaluation" / "test" / "thresholds.json").read_text())["per_class"]
    assert json.loads(meta["thresholds"]) == thresholds
    ts = load_backend(result.files["torchscript"])
    assert ts.class_names == ["square", "circle", "triangle"] and ts.thresholds == thresholds


def test_exported_models_detect_what_pytorch_detects(exported, backend, tiny_dataset):
    from rfdetr_trainer.integrations.rfdetr.inference import detect, load_backend

    result, _ = exported
    images = sorted((tiny_dataset / "test").glob("*.jpg"))
    reference = detect(backend, images, threshold=0.001)
    for fmt in ("onnx", "torchscript"):
        got = detect(load_backend(result.files[fmt], device="cpu"), images, threshold=0.001, batch_size=2)
        for a, b in zip(reference, got):
            top = min(20, len(a.scores))  # the top-k tail may swap near-tied queries between runtimes
            np.testing.assert_allclose(b.scores[:top], a.scores[:top], atol=1e-3)
            np.testing.assert_allclose(b.boxes_xyxy[:top], a.boxes_xyxy[:top], atol=0.5)
            assert b.labels[:top].tolist() == a.labels[:top].tolist()


def test_predict_runs_the_onnx_file_with_its_own_thresholds(exported, tiny_dataset, tmp_path):
    result, _ = exported
    out = tmp_path / "pred"
    run = CliRunner().invoke(app, ["predict", "--model", str(result.files["onnx"]), "--input",
                                   str(tiny_dataset / "test"), "--output", str(out), "--thresholds", "auto",
                                   "--batch-size", "2", "--json"])
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)
    assert summary["num_images"] == 3 and (out / "coco_results.json").is_file()


def test_an_export_losing_map_fails_with_exit_10(exported, tiny_dataset, tmp_path):
    """The gate itself: a PyTorch reference 0.5 mAP above what the exported file really scores."""
    from rfdetr_trainer.services.export import _compare_maps

    result, out = exported
    reference = json.loads((out / "evaluation" / "test" / "metrics.json").read_text())

    class Reference:  # the reference as export receives it, with PyTorch scoring 0.5 higher
        metrics = {**reference, "mAP50_95": (reference["mAP50_95"] or 0.0) + 0.5}
        metrics_path = out / "evaluation" / "test" / "metrics.json"

    with pytest.raises(ExportError, match=r"model.onnx: mAP50:95 .* below PyTorch's .*max_map_drop 0.01") as info:
        _compare_maps(Reference, {"onnx": result.files["onnx"]}, tiny_dataset, "test", tmp_path, 0.01)
    assert info.value.exit_code == 10
