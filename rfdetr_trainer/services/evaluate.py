"""The evaluate stage: run a model (checkpoint, ONNX or TorchScript) on a split and write what it got right and wrong.

Writes into the output folder (atomically, as one folder): ``coco_results.json`` (every detection of the trained
classes scoring at least 0.001), ``metrics.json``, ``per_class.csv``, ``confusion_matrix.json`` / ``.png`` (and
``confusion_matrix_normalized.png``), ``pr_curve.png``, ``f1_curve.png``, ``thresholds.json``, and ``errors/``
with ``errors.json``: the images with the most false positives + false negatives, drawn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rfdetr_trainer.coco.io import staging_dir, write_text_atomic
from rfdetr_trainer.errors import DatasetError
from rfdetr_trainer.evaluation.core import SCORE_FLOOR, Evaluation, evaluate_coco
from rfdetr_trainer.logs import get_logger, progress

log = get_logger(__name__)

ANNOTATIONS = "_annotations.coco.json"


@dataclass
class EvaluateResult:
    """What evaluate wrote, and the headline numbers."""

    output_dir: Path
    metrics_path: Path
    split: str
    model: str
    metrics: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    evaluation: Evaluation | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        """The overall numbers without the per-class rows (for manifests and side-by-side tables)."""
        return {k: v for k, v in self.metrics.items() if k != "per_class"}

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": str(self.output_dir), "metrics_json": str(self.metrics_path), "split": self.split,
                "model": self.model, "metrics": self.summary(),
                "files": {k: str(v) for k, v in self.files.items()}}


def split_annotations(dataset_dir: Path, split: str | None) -> tuple[Path, str]:
    """The ground-truth file of ``split`` in a dataset root, or of ``dataset_dir`` when it is a split folder."""
    dataset_dir = Path(dataset_dir)
    if (dataset_dir / ANNOTATIONS).is_file() and not split:
        return dataset_dir / ANNOTATIONS, dataset_dir.name
    split = split or "test"
    ann = dataset_dir / split / ANNOTATIONS
    if not ann.is_file():
        present = [p.parent.name for p in sorted(dataset_dir.glob(f"*/{ANNOTATIONS}"))]
        raise DatasetError(f"{ann}: missing; the dataset has no '{split}' split",
                           hint=f"pass --split {' or '.join(present)}" if present else "pass a dataset folder")
    return ann, split


def category_ids(class_names: list[str], categories: list[dict[str, Any]]) -> np.ndarray:
    """Per model label, the dataset's category id of the same name (-1 where the dataset has no such class)."""
    by_name = {str(c.get("name")): int(c["id"]) for c in categories}
    ids = np.array([by_name.get(n, -1) for n in class_names], dtype=np.int64)
    missing = [n for n, i in zip(class_names, ids) if i < 0]
    if missing:
        log.warning("classes %s are not in the ground truth; their detections are not scored", missing)
    if class_names and not (ids >= 0).any():
        raise DatasetError(f"none of the model's classes {class_names} is a category of the ground truth",
                           hint="evaluate on the dataset the model was trained for")
    return ids


def run_model(backend: Any, images: list[dict[str, Any]], folder: Path, cat_of_label: np.ndarray, *,
              batch_size: int, label: str = "evaluate") -> np.ndarray:
    """Detections (N x 7: image_id, x, y, w, h, score, category_id) of ``backend`` on the split's images."""
    from rfdetr_trainer.integrations.rfdetr.inference import predict_images

    paths = [folder / i["file_name"] for i in images]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{missing[0]}: listed in {folder / ANNOTATIONS} but missing ({len(missing)} missing)")
    rows = []
    with progress() as bar:
        task = bar.add_task(label, total=len(paths))
        for record, pred in zip(images, predict_images(backend, paths, threshold=SCORE_FLOOR,
                                                        batch_size=batch_size)):
            cats = cat_of_label[pred.labels] if len(pred.labels) else np.zeros(0, np.int64)
            keep = cats >= 0
            xyxy = pred.boxes_xyxy[keep].astype(np.float64)
            block = np.empty((int(keep.sum()), 7))
            block[:, 0] = int(record["id"])
            block[:, 1:3] = xyxy[:, :2]
            block[:, 3:5] = xyxy[:, 2:] - xyxy[:, :2]
            block[:, 5] = pred.scores[keep]
            block[:, 6] = cats[keep]
            rows.append(block)
            bar.advance(task)
    return np.concatenate(rows) if rows else np.zeros((0, 7))


def results_json(detections: np.ndarray) -> str:
    """``coco_results.json`` text (boxes to 0.01 px, scores to 5 decimals)."""
    out = [{"image_id": int(r[0]), "category_id": int(r[6]),
            "bbox": [round(float(r[1]), 2), round(float(r[2]), 2), round(float(r[3]), 2), round(float(r[4]), 2)],
            "score": round(float(r[5]), 5)} for r in detections]
    return json.dumps(out)


def evaluate(backend: Any, dataset_dir: Path, output_dir: Path, *, split: str | None = "test", iou: float = 0.5,
             confidence: float | None = None, batch_size: int = 4, num_errors: int = 16,
             dataset_manifest: Path | None = None, plots: bool = True) -> EvaluateResult:
    """Evaluate ``backend`` on one split of ``dataset_dir`` and write the evaluation folder ``output_dir``.

    Args:
        backend: an ``inference.Backend`` (checkpoint, ONNX, TorchScript) or an rfdetr model object.
        dataset_dir: dataset root (with ``split``) or a split folder holding ``_annotations.coco.json``.
        output_dir: written atomically; an earlier evaluation folder there is replaced.
        split: test, valid or train.
        iou: IoU a detection needs to match a box (confusion matrix, curves, thresholds, errors).
        confidence: confidence of the confusion matrix and the error gallery; None: the best-F1 confidence.
            mAP always uses every detection scoring at least 0.001.
        batch_size: images per forward pass.
        num_errors: images in the error gallery.
        dataset_manifest: the dataset's ``dataset_manifest.json``; names each error image's CVAT task and frame.
        plots: draw the PNG figures.
    """
    from rfdetr_trainer.integrations.rfdetr.inference import as_backend

    backend = as_backend(backend)
    ann, split_name = split_annotations(dataset_dir, split)
    try:
        gt = json.loads(ann.read_text(encoding="utf-8"))
        images, categories = list(gt["images"]), list(gt.get("categories", []))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{ann}: malformed COCO annotations ({exc})") from None
    cat_of_label = category_ids(backend.class_names, categories)
    log.info("evaluating %s (%s) on %s: %d images", backend.source or "model", backend.kind, ann, len(images))
    detections = run_model(backend, images, ann.parent, cat_of_label, batch_size=batch_size)
    evaluation = evaluate_coco(gt, detections, iou=iou, confidence=confidence)
    model_name = str(backend.source) if backend.source else backend.kind
    output_dir = Path(output_dir)
    with staging_dir(output_dir, marker="metrics.json", what="an earlier evaluation folder") as staging:
        write_text_atomic(staging / "coco_results.json", results_json(detections))
        files = write_evaluation(evaluation, staging, extra={"split": split_name, "model": model_name,
                                                             "backend": backend.kind, "ground_truth": str(ann)},
                                 plots=plots)
        files["coco_results"] = staging / "coco_results.json"
        provenance = cvat_frames(dataset_manifest, ann.parent.name) if dataset_manifest else {}
        files.update(write_errors(evaluation, gt, detections, ann.parent, staging / "errors", num_errors,
                                  provenance))
    files = {k: output_dir / v.relative_to(staging) for k, v in files.items()}
    print_table(evaluation)
    return EvaluateResult(output_dir, output_dir / "metrics.json", split_name, model_name,
                          evaluation.metrics_dict(), files, evaluation)


def write_evaluation(evaluation: Evaluation, folder: Path, *, extra: dict[str, Any] | None = None,
                     plots: bool = True) -> dict[str, Path]:
    """The data files and (with ``plots``) the figures of ``evaluation`` in ``folder``."""
    from rfdetr_trainer.evaluation.files import write_data_files

    files = write_data_files(evaluation, folder, extra=extra)
    if plots:
        from rfdetr_trainer.integrations import plots as figures

        names, curves, cm = evaluation.class_names, evaluation.curves, evaluation.confusion
        labels = [*names, "background"]
        files["confusion_matrix"] = figures.confusion_matrix_png(
            cm.matrix, labels, folder / "confusion_matrix.png",
            title=f"confusion matrix (conf {cm.confidence:.3g}, IoU {cm.iou:g})")
        files["confusion_matrix_normalized"] = figures.confusion_matrix_png(
            cm.normalized(), labels, folder / "confusion_matrix_normalized.png", normalized=True)
        mean_ap = evaluation.metrics.get("mAP50")
        files["pr_curve"] = figures.curves_png(
            curves.pr_recall, curves.pr_precision, names, curves.mean_pr(), folder / "pr_curve.png",
            xlabel="recall", ylabel="precision", title=f"precision-recall (IoU {cm.iou:g})",
            mean_label=f"all classes (mAP50 {mean_ap:.3f})" if mean_ap == mean_ap else "all classes")
        best = evaluation.thresholds["overall"]
        files["f1_curve"] = figures.curves_png(
            curves.confidence, curves.f1, names, curves.mean_f1(), folder / "f1_curve.png",
            xlabel="confidence", ylabel="F1", title="F1 by confidence",
            mean_label=f"all classes (best {best['f1']:.2f} at {best['confidence']:.3f})")
    return files


def cvat_frames(manifest_path: Path, split: str) -> dict[str, dict[str, Any]]:
    """file name in ``split`` -> {"task_id", "frame", "source"} for images that came from a CVAT task (best effort).

    A CVAT task export numbers its images 1..N in frame order (docs/cvat-protocol.md), so the frame is the image
    id in the task's own annotation file minus one. The merge records, for every image it writes, its source and
    original image id (``image_origins`` in the manifest), which stays right when it renamed colliding file names
    (``frame_000000.jpg`` of two video tasks). Then every image of the split has an entry (empty when it did not
    come from a CVAT task). A manifest from before that record is matched by base file name in each CVAT source's
    annotation files, the first one winning, which is wrong for renamed files.
    """
    manifest_path = Path(manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    sources = manifest.get("sources") or []
    tasks: dict[int, dict[str, Any]] = {}
    for n, source in enumerate(sources):
        origin = source.get("origin") or {}
        if origin.get("type") == "cvat" and "task_id" in origin:
            tasks[n] = {"task_id": origin["task_id"], "source": source.get("name")}
    recorded = manifest.get("image_origins")
    if isinstance(recorded, dict):
        return _recorded_frames(manifest_path.parent / str(recorded.get("path", "")), split, tasks)
    out: dict[str, dict[str, Any]] = {}
    for n, task in tasks.items():
        source = sources[n]
        for ann in source.get("annotation_files", []):
            try:
                data = json.loads((Path(source["path"]) / ann["path"]).read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            for image in data.get("images", []):
                name = Path(str(image.get("file_name", "")).replace("\\", "/")).name
                out.setdefault(name, {"task_id": task["task_id"], "frame": int(image["id"]) - 1,
                                      "source": task["source"]})
    return out


def _recorded_frames(path: Path, split: str, tasks: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """:func:`cvat_frames` from the merge's ``image_origins`` file (rows: split/file, source, file_name, id)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        columns = doc["columns"]
        at = [columns.index(c) for c in ("file", "source", "image_id")]
        rows = doc["rows"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        log.warning("%s: unreadable; error images are not traced to their CVAT frames", path)
        return {}
    prefix = f"{split}/"
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        try:
            file, source, image_id = (row[i] for i in at)
            if not file.startswith(prefix):
                continue
            task = tasks.get(source)
            out[file[len(prefix):]] = {"task_id": task["task_id"], "frame": int(image_id) - 1,
                                       "source": task["source"]} if task else {}
        except (IndexError, TypeError, ValueError, AttributeError):
            continue
    return out


def write_errors(evaluation: Evaluation, gt: dict[str, Any], detections: np.ndarray, folder: Path,
                 out: Path, count: int, provenance: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """Draw the ``count`` worst images (ground truth green, predictions red) and list them in ``errors.json``."""
    from rfdetr_trainer.integrations.plots import draw_boxes
    from rfdetr_trainer.integrations.rfdetr.inference import open_image

    out.mkdir(parents=True, exist_ok=True)
    names = dict(zip(evaluation.category_ids, evaluation.class_names))
    conf = evaluation.confusion.confidence
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in gt.get("annotations", []):
        by_image.setdefault(int(a["image_id"]), []).append(a)
    listed = []
    for rank, item in enumerate(evaluation.worst_images(count), start=1):
        gts = by_image.get(item.image_id, [])
        gt_boxes = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                    for a in gts]
        dets = detections[(detections[:, 0] == item.image_id) & (detections[:, 5] >= conf)]
        det_boxes = [[r[1], r[2], r[1] + r[3], r[2] + r[4]] for r in dets]
        text = [f"{names.get(int(r[6]), int(r[6]))} {r[5]:.2f}" for r in dets]
        drawn = out / f"{rank:02d}_{Path(item.file_name).stem}.jpg"
        draw_boxes(open_image(folder / item.file_name), gt_boxes, det_boxes, text, drawn,
                   gt_text=[str(names.get(int(a["category_id"]), a["category_id"])) for a in gts])
        entry = {"rank": rank, "file_name": item.file_name, "image_id": item.image_id,
                 "false_positives": item.false_positives, "false_negatives": item.false_negatives,
                 "num_gt": item.num_gt, "num_detections": item.num_detections, "drawn": drawn.name}
        name = item.file_name.replace("\\", "/")
        entry.update(provenance[name] if name in provenance else provenance.get(Path(name).name, {}))
        listed.append(entry)
    path = out / "errors.json"
    write_text_atomic(path, json.dumps({"confidence": conf, "iou": evaluation.confusion.iou, "images": listed},
                                       indent=2) + "\n")
    return {"errors": path}


def print_table(evaluation: Evaluation) -> None:
    """The per-class table on stderr (rich)."""
    from rich.table import Table

    from rfdetr_trainer.logs import stderr_console

    def fmt(v: Any) -> str:
        return "-" if v is None or (isinstance(v, float) and v != v) else (f"{v:.3f}" if isinstance(v, float)
                                                                            else str(v))

    m = evaluation.metrics
    table = Table(title=f"mAP50:95 {fmt(m['mAP50_95'])}  mAP50 {fmt(m['mAP50'])}  mAP75 {fmt(m['mAP75'])}")
    for col in ("class", "boxes", "AP50:95", "AP50", "P", "R", "F1", "conf"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for row in evaluation.per_class:
        table.add_row(row["class"], str(row["num_gt"]), fmt(row["AP50_95"]), fmt(row["AP50"]),
                      fmt(row["precision"]), fmt(row["recall"]), fmt(row["f1"]), fmt(row["confidence"]))
    table.add_row("all", str(m["num_gt"]), fmt(m["mAP50_95"]), fmt(m["mAP50"]), fmt(m["precision"]),
                  fmt(m["recall"]), fmt(m["f1"]), fmt(m["confidence"]), style="bold")
    stderr_console().print(table)
