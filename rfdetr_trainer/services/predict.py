"""The predict stage: annotated images, one grid, COCO results, and mAP where ground truth exists."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer.coco.io import staging_dir, write_text_atomic
from rfdetr_trainer.errors import DatasetError, PredictionError
from rfdetr_trainer.logs import get_logger, progress
from rfdetr_trainer.schemas import ValidationConfig

log = get_logger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
ANNOTATIONS = "_annotations.coco.json"


@dataclass
class PredictResult:
    """What predict wrote."""

    output_dir: Path
    images_dir: Path
    grid_path: Path | None
    results_path: Path
    num_images: int
    num_detections: int
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": str(self.output_dir), "images_dir": str(self.images_dir),
                "grid": str(self.grid_path) if self.grid_path else None, "coco_results": str(self.results_path),
                "num_images": self.num_images, "num_detections": self.num_detections, "metrics": self.metrics}


@dataclass
class _Inputs:
    images: list[Path]
    image_ids: list[int]
    ground_truth: Path | None
    categories: list[dict[str, Any]]


def resolve_inputs(source: Path, split: str | None = None) -> _Inputs:
    """Images to run on: a split folder with ground truth, a dataset root plus ``split``, a folder, or a file."""
    source = Path(source)
    if split:
        source = source / split
    if not source.exists():
        raise DatasetError(f"{source}: does not exist", hint="pass a split folder, an image folder or an image")
    ann = source / ANNOTATIONS if source.is_dir() else None
    if ann is not None and ann.is_file():
        try:
            coco = json.loads(ann.read_text(encoding="utf-8"))
            images = [(int(i["id"]), source / i["file_name"]) for i in coco["images"]]
            categories = list(coco.get("categories", []))
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{ann}: malformed COCO annotations ({exc})") from None
        missing = [str(p) for _, p in images if not p.is_file()]
        if missing:
            raise DatasetError(f"{missing[0]}: listed in {ann} but missing on disk ({len(missing)} missing)")
        return _Inputs([p for _, p in images], [i for i, _ in images], ann, categories)
    if source.is_file():
        files = [source]
    else:
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DatasetError(f"{source}: no images found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return _Inputs(files, list(range(1, len(files) + 1)), None, [])


def predict(
    model: Any,
    source: Path,
    output_dir: Path,
    validation: ValidationConfig,
    *,
    split: str | None = None,
    grid_size: int = 16,
    save_images: bool = True,
    thresholds: dict[str, float] | None = None,
) -> PredictResult:
    """Run ``model`` over ``source`` and write predictions under ``output_dir``.

    Two sets of detections come out of one pass. ``coco_results.json`` holds every detection of the trained
    classes scoring at least 0.001 (before NMS), the standard input of COCO's mAP, which ``metrics.json`` reports
    when ground truth exists. The drawings, the grid and ``predictions.coco.json`` hold what a user keeps:
    detections above the confidence threshold (or the per-class ``thresholds``), after class-agnostic NMS.

    Args:
        model: an ``inference.Backend`` (checkpoint, ONNX, TorchScript) or an rfdetr model object.
        source: split folder (with ``_annotations.coco.json``), dataset root (with ``split``), folder or image.
        output_dir: written atomically (an earlier predictions folder is replaced, any other non-empty folder
            is refused) with ``images/``, ``grid.jpg``, ``coco_results.json``,
            ``predictions.coco.json`` and ``metrics.json`` (when ground truth exists).
        validation: confidence and NMS IoU thresholds, batch size.
        split: split name inside a dataset root.
        grid_size: images in the grid.
        save_images: write one annotated image per input.
        thresholds: per-class confidence (class name -> threshold) replacing the single one for drawing.
    """
    from rfdetr_trainer.evaluation.core import SCORE_FLOOR
    from rfdetr_trainer.integrations.rfdetr.drawing import annotate, grid
    from rfdetr_trainer.integrations.rfdetr.inference import as_backend, predict_images

    inputs = resolve_inputs(source, split)
    output_dir = Path(output_dir)
    with staging_dir(output_dir, marker="coco_results.json", what="an earlier predictions folder") as staging:
        backend = as_backend(model)
        class_names = backend.class_names
        category_of = _category_mapping(class_names, inputs.categories)
        display: float | dict[int, float] = validation.confidence_threshold
        if thresholds:
            display = {i: float(thresholds.get(n, validation.confidence_threshold)) for i, n in enumerate(class_names)}
        images_dir = staging / "images"
        images_dir.mkdir()
        results, kept, coco_images, frames = [], [], [], []
        with progress() as bar:
            task = bar.add_task("predict", total=len(inputs.images))
            for image_id, raw in zip(inputs.image_ids, predict_images(
                    backend, inputs.images, threshold=min(SCORE_FLOOR, validation.confidence_threshold),
                    batch_size=validation.batch_size, keep_images=save_images or len(frames) < grid_size)):
                coco_images.append({"id": image_id, "file_name": raw.path.name, "width": raw.width,
                                    "height": raw.height})
                results.extend(_records(image_id, raw, category_of))
                shown = raw.above(display).nms(validation.iou_threshold)
                kept.extend(_records(image_id, shown, category_of))
                if save_images or len(frames) < grid_size:
                    frame = annotate(shown, class_names)
                    if save_images:
                        _save_frame(frame, images_dir / f"{len(coco_images):05d}_{raw.path.stem}.jpg")
                    if len(frames) < grid_size:
                        frames.append(frame)
                bar.advance(task)
        grid(frames).save(staging / "grid.jpg", quality=90)
        write_text_atomic(staging / "coco_results.json", json.dumps(results))
        categories = inputs.categories or [{"id": i + 1, "name": n} for i, n in enumerate(class_names)]
        annotations = [{"id": i + 1, **r, "area": round(r["bbox"][2] * r["bbox"][3], 2), "iscrowd": 0}
                       for i, r in enumerate(kept)]
        write_text_atomic(staging / "predictions.coco.json", json.dumps(
            {"images": coco_images, "annotations": annotations, "categories": categories}))
        metrics = evaluate(inputs.ground_truth, results) if inputs.ground_truth else {}
        if metrics:
            write_text_atomic(staging / "metrics.json", json.dumps(metrics, indent=2))
    return PredictResult(output_dir, output_dir / "images", output_dir / "grid.jpg",
                         output_dir / "coco_results.json", len(inputs.images), len(kept), metrics)


def _records(image_id: int, pred: Any, category_of: Any) -> list[dict[str, Any]]:
    """COCO result records of one image's detections; labels without a dataset category are left out."""
    out = []
    for (x0, y0, x1, y1), score, label in zip(pred.boxes_xyxy.tolist(), pred.scores.tolist(), pred.labels.tolist()):
        category = category_of(label)
        if category is None:
            continue
        out.append({"image_id": image_id, "category_id": category,
                    "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                    "score": round(score, 5)})
    return out


def _save_frame(frame: Any, path: Path) -> None:
    from PIL import Image

    Image.fromarray(frame).save(path, quality=90)


def _category_mapping(class_names: list[str], categories: list[dict[str, Any]]):
    """Model label -> category id of the ground truth (matched by name), or label + 1 without ground truth.

    A label whose class the ground truth lacks maps to None: such detections are left out of the results
    rather than written under an id that means nothing.
    """
    by_name = {c.get("name"): c.get("id") for c in categories}
    ids = [by_name.get(name) for name in class_names]
    if categories and class_names and any(i is None for i in ids):
        unknown = [n for n, i in zip(class_names, ids) if i is None]
        log.warning("classes %s are not in the ground truth; their detections are left out", unknown)

    def category_of(label: int) -> int | None:
        if 0 <= label < len(ids) and ids[label] is not None:
            return int(ids[label])
        return label + 1 if not categories and 0 <= label < len(class_names) else None

    return category_of


def evaluate(ground_truth: Path, results: list[dict[str, Any]]) -> dict[str, float]:
    """COCO mAP50 and mAP50:95 of ``results`` (every detection >= 0.001) against ``ground_truth``."""
    from rfdetr_trainer.evaluation.cocomap import coco_metrics
    from rfdetr_trainer.evaluation.core import detections_array

    try:
        gt = json.loads(Path(ground_truth).read_text(encoding="utf-8"))
        known = {int(c["id"]) for c in gt.get("categories", [])}
        stats, _ = coco_metrics(gt, detections_array([r for r in results if r["category_id"] in known]))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise PredictionError(f"{ground_truth}: cannot score predictions against it ({exc})") from None
    return {"mAP50_95": round(max(stats["mAP50_95"], 0.0), 5) if stats["mAP50_95"] == stats["mAP50_95"] else 0.0,
            "mAP50": round(max(stats["mAP50"], 0.0), 5) if stats["mAP50"] == stats["mAP50"] else 0.0}
