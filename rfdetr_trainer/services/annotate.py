"""The annotate stage: a trained model's predictions go back to CVAT tasks as pre-annotations.

Per task: read the labels, frames and stored annotations; choose the frames to annotate (by default those with
no shapes at all; ``frames="all"`` adds frames that hold human work); download those frames (cached); run the
model in batches; keep detections at or above their class threshold whose class names a task label; upload them
as ``source: "auto"`` shapes, one PATCH per batch so an interrupted run keeps what it uploaded and the rerun
carries on (frames it annotated now hold shapes and are skipped).

Human work is never touched: only shapes whose ``source`` is ``"auto"`` count as this tool's, and only those are
deleted by ``replace`` (CVAT's UI marks an edited auto shape ``semi-auto``, so a corrected one is kept). A frame
that already holds auto shapes is never annotated a second time without ``replace``, so reruns add nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rfdetr_trainer.coco.io import write_text_atomic
from rfdetr_trainer.errors import ConfigError
from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)

#: Candidates the model reports; those under their class threshold are counted as "skipped by threshold".
DETECTION_FLOOR = 0.05
SUMMARY_NAME = "annotate_summary.json"


@dataclass(frozen=True)
class Detection:
    """One predicted object in pixels of its frame."""

    class_name: str
    score: float
    box_xyxy: tuple[float, float, float, float]
    polygon: tuple[float, ...] | None = None  # flat x, y, … for segmentation models


#: Runs a model over image files; yields each image's detections (all at or above the floor), in order.
Predictor = Callable[[list[Path]], Iterable[list[Detection]]]


@dataclass(frozen=True)
class Thresholds:
    """Per-class confidence thresholds, ``overall`` for classes without their own."""

    overall: float
    per_class: dict[str, float] = field(default_factory=dict)
    source: str = "--conf"

    def of(self, name: str) -> float:
        return self.per_class.get(name, self.overall)

    @property
    def lowest(self) -> float:
        return min([self.overall, *self.per_class.values()])


@dataclass
class TaskSummary:
    """What annotate did (or, dry, would do) to one task."""

    task_id: int
    frames_total: int = 0
    frames_selected: int = 0
    frames_annotated: int = 0
    frames_skipped_labeled: int = 0
    frames_skipped_ours: int = 0
    shapes_uploaded: int = 0
    shapes_replaced: int = 0
    skipped_threshold: int = 0
    skipped_unknown_label: int = 0
    unknown_labels: dict[str, int] = field(default_factory=dict)
    coco_path: str | None = None

    def line(self) -> str:
        unknown = ", ".join(f"{k} x{v}" for k, v in sorted(self.unknown_labels.items()))
        return (f"task {self.task_id}: {self.frames_annotated}/{self.frames_total} frames annotated "
                f"({self.frames_selected} selected, {self.frames_skipped_labeled} with human shapes, "
                f"{self.frames_skipped_ours} already pre-annotated), {self.shapes_uploaded} shapes uploaded"
                f"{f', {self.shapes_replaced} replaced' if self.shapes_replaced else ''}, "
                f"skipped {self.skipped_threshold} under threshold, {self.skipped_unknown_label} with no such label"
                f"{f' ({unknown})' if unknown else ''}")


@dataclass
class AnnotateResult:
    """Every task's summary, the per-frame plan (what was or would be uploaded) and the summary file."""

    output_dir: Path
    summary_path: Path
    tasks: list[TaskSummary]
    dry_run: bool
    plan: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": str(self.output_dir), "summary": str(self.summary_path), "dry_run": self.dry_run,
                "tasks": [vars(t) for t in self.tasks]}


# ------------------------------------------------------------------------------------------- thresholds


def read_thresholds(path: Path, conf: float = 0.5) -> Thresholds:
    """A ``thresholds.json`` as ``evaluate`` writes it: its per-class confidences, its overall best-F1 confidence
    for the other classes (``conf`` where the evaluation found none).

    Raises:
        ConfigError: unreadable or not that shape; the message names the file (and the field).
    """
    from rfdetr_trainer.evaluation.files import read_threshold_values

    try:
        overall, per_class = read_threshold_values(Path(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read thresholds ({exc})",
                          hint="pass the thresholds.json that rfdetr-trainer evaluate writes") from None
    return Thresholds(conf if overall is None else overall, per_class, str(path))


def find_thresholds(model_path: Path, conf: float, model_thresholds: Callable[[], dict[str, float]]) -> Thresholds:
    """``--thresholds auto``, as ``predict`` resolves it: the run's ``evaluation/<split>/thresholds.json`` (test,
    then valid), else the per-class confidences stored in the model (``model_thresholds``: an exported file's
    metadata), with ``conf`` for the classes they leave out.

    Raises:
        ConfigError: none found (the message lists where it looked).
    """
    from rfdetr_trainer.evaluation.files import run_thresholds_paths

    candidates = run_thresholds_paths(model_path)
    for candidate in candidates:
        if candidate.is_file():
            return read_thresholds(candidate, conf)
    stored = model_thresholds()
    if stored:
        return Thresholds(conf, {str(k): float(v) for k, v in stored.items()}, f"{model_path} (metadata)")
    looked = ", ".join([*(str(c) for c in candidates), f"the metadata of {model_path}"])
    raise ConfigError(f"--thresholds auto: no thresholds found for {model_path} (looked in {looked})",
                      hint="run 'rfdetr-trainer evaluate' first, pass --thresholds FILE, or use --conf")


def resolve_thresholds(spec: str | None, conf: float, model_path: Path,
                       model_thresholds: Callable[[], dict[str, float]] | None = None) -> Thresholds:
    """``None`` → one threshold ``conf``; ``auto`` → :func:`find_thresholds`; anything else → a file path.

    ``model_thresholds`` gives the thresholds stored in the model; by default its backend is loaded to read them.
    """
    if not spec:
        return Thresholds(conf)
    if spec == "auto":
        return find_thresholds(Path(model_path), conf, model_thresholds or (lambda: _stored_thresholds(model_path)))
    if not Path(spec).is_file():
        raise ConfigError(f"--thresholds {spec}: no such file", hint="pass auto or a thresholds.json")
    return read_thresholds(Path(spec), conf)


def _stored_thresholds(model_path: Path) -> dict[str, float]:
    from rfdetr_trainer.integrations.rfdetr.inference import load_backend

    return load_backend(Path(model_path)).thresholds


# ------------------------------------------------------------------------------------------- the model


def load_predictor(model_path: Path, *, floor: float, iou_threshold: float, batch_size: int = 4) -> Predictor:
    """The one place annotate touches model inference: a :data:`Predictor` over a checkpoint, ``model.onnx`` or
    ``model.torchscript`` (the batched, backend-aware API ``predict`` and ``evaluate`` use).

    Only the trained classes are ever predicted (the backend drops the head's spare logits before the top-k).

    Raises:
        CheckpointError: the checkpoint or model file is missing or unreadable.
    """
    from rfdetr_trainer.integrations.rfdetr.inference import load_backend

    return predictor_for(load_backend(Path(model_path)), floor=floor, iou_threshold=iou_threshold,
                         batch_size=batch_size)


def predictor_for(backend: Any, *, floor: float, iou_threshold: float, batch_size: int = 4) -> Predictor:
    """A :data:`Predictor` over a loaded inference backend (see :func:`load_predictor`).

    A segmentation model's detections carry their mask's largest outer outline as ``polygon`` (uploaded as a CVAT
    polygon); a detection whose mask holds no outline of 3 points keeps only its box (a rectangle).
    """
    from rfdetr_trainer.integrations.rfdetr.inference import predict_images

    names = [str(n) for n in backend.class_names]

    def run(images: list[Path]) -> Iterator[list[Detection]]:
        for pred in predict_images(backend, images, threshold=floor, batch_size=batch_size):
            pred = pred.nms(iou_threshold)
            dets = []
            for i, (b, s, c) in enumerate(zip(pred.boxes_xyxy, pred.scores, pred.labels)):
                outline = pred.polygon(i) if pred.masks is not None else None
                dets.append(Detection(names[c] if 0 <= c < len(names) else f"class_{c}", float(s),
                                      (float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                                      tuple(outline) if outline else None))
            yield dets

    return run


# ------------------------------------------------------------------------------------------- planning


def _human(shape: dict[str, Any]) -> bool:
    from rfdetr_trainer.integrations.cvat.tasks import AUTO_SOURCE

    return shape.get("source", "manual") != AUTO_SOURCE


def labeled_frames(annotations: dict[str, Any], n_frames: int) -> tuple[set[int], dict[int, list[dict]]]:
    """Frames holding human work (shapes not made by this tool, tags, tracks) and this tool's shapes by frame."""
    human: set[int] = set()
    ours: dict[int, list[dict]] = {}
    for shape in annotations.get("shapes", []):
        if _human(shape):
            human.add(int(shape["frame"]))
        else:
            ours.setdefault(int(shape["frame"]), []).append(shape)
    for tag in annotations.get("tags", []):
        human.add(int(tag["frame"]))
    for track in annotations.get("tracks", []):
        # A track is visible from its first keyframe until a keyframe marks it outside (or to the end).
        keys = sorted(track.get("shapes", []), key=lambda s: s["frame"])
        visible_from = None
        for key in keys:
            if not key.get("outside") and visible_from is None:
                visible_from = int(key["frame"])
            elif key.get("outside") and visible_from is not None:
                human.update(range(visible_from, int(key["frame"])))
                visible_from = None
        if visible_from is not None:
            human.update(range(visible_from, n_frames))
    return human, ours


def _score_value(spec: dict[str, Any], score: float) -> str:
    """A score as the ``score`` attribute's input type wants it (a number attribute's values are min, max, step)."""
    values = spec.get("values") or []
    if spec.get("input_type") == "number" and len(values) == 3:
        try:
            lo, hi, step = (float(v) for v in values)
        except ValueError:
            return f"{score:.4f}"
        value = min(max(score, lo), hi)
        decimals = max(0, len(str(values[2]).split(".")[1]) if "." in str(values[2]) else 0)
        return f"{round(round(value / step) * step, decimals):.{decimals}f}" if step > 0 else f"{value:.4f}"
    return f"{score:.4f}"


def make_shape(det: Detection, label: Any, frame: int, width: int, height: int) -> dict[str, Any]:
    """A CVAT ``LabeledShape`` dict: a rectangle (or polygon) in pixels, clipped to the frame, ``source: auto``."""
    x0, y0, x1, y1 = det.box_xyxy
    x0, x1 = sorted((min(max(x0, 0.0), width), min(max(x1, 0.0), width)))
    y0, y1 = sorted((min(max(y0, 0.0), height), min(max(y1, 0.0), height)))
    if det.polygon and len(det.polygon) >= 6:
        kind, points = "polygon", [round(v, 2) for v in det.polygon]
    else:
        kind, points = "rectangle", [round(x0, 2), round(y0, 2), round(x1, 2), round(y1, 2)]
    attributes = []
    if "score" in label.attributes:
        spec = label.attributes["score"]
        attributes.append({"spec_id": int(spec["id"]), "value": _score_value(spec, det.score)})
    return {"type": kind, "frame": frame, "label_id": label.id, "points": points, "source": "auto",
            "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0, "group": 0,
            "attributes": attributes, "score": round(det.score, 5)}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-80:]


def cached_frame(api: Any, task_id: int, frame: Any, root: Path) -> Path:
    """The frame's file under ``root``, downloaded once (names carry frame number, name and a hash of it)."""
    digest = hashlib.sha1(frame.name.encode()).hexdigest()[:8]
    path = root / f"{frame.frame:06d}_{digest}_{_safe(Path(frame.name).name)}"
    if not path.is_file():
        data = api.frame_bytes(task_id, frame.frame)
        root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


@dataclass(frozen=True)
class AnnotateOptions:
    """How annotate chooses frames and what it keeps."""

    frames: Literal["unlabeled", "all"] = "unlabeled"
    thresholds: Thresholds = field(default_factory=lambda: Thresholds(0.5))
    replace: bool = False
    dry_run: bool = False
    batch_size: int = 4


def annotate_task(api: Any, task_id: int, predictor: Predictor, options: AnnotateOptions, frames_root: Path,
                  plan: list[str]) -> tuple[TaskSummary, dict[str, Any]]:
    """Pre-annotate one task; the summary and the task's predictions as a COCO dataset (frame + 1 = image id)."""
    summary = TaskSummary(task_id)
    labels = api.labels(task_id)
    by_name = {lab.name: lab for lab in labels}
    frames = api.frames(task_id)
    summary.frames_total = len(frames)
    human, ours = labeled_frames(api.annotations(task_id), max((f.frame for f in frames), default=-1) + 1)
    selected = []
    for frame in frames:
        if frame.frame in human and options.frames == "unlabeled":
            summary.frames_skipped_labeled += 1
        elif frame.frame in ours and not options.replace:
            summary.frames_skipped_ours += 1
        else:
            selected.append(frame)
    summary.frames_selected = len(selected)
    categories = [{"id": i + 1, "name": lab.name, "supercategory": ""} for i, lab in enumerate(labels)]
    cat_of = {lab.name: i + 1 for i, lab in enumerate(labels)}
    coco: dict[str, Any] = {"images": [], "annotations": [], "categories": categories}
    unknown: Counter[str] = Counter()
    verb = "would upload" if options.dry_run else "uploaded"
    for start in range(0, len(selected), options.batch_size):
        batch = selected[start:start + options.batch_size]
        paths = [cached_frame(api, task_id, f, frames_root) for f in batch]
        new_shapes, old_shapes = [], []
        for frame, dets in zip(batch, predictor(paths)):
            coco["images"].append({"id": frame.frame + 1, "file_name": frame.name, "width": frame.width,
                                   "height": frame.height, "frame": frame.frame})
            kept = []
            for det in dets:
                if det.score < options.thresholds.of(det.class_name):
                    summary.skipped_threshold += 1
                elif det.class_name not in by_name:
                    unknown[det.class_name] += 1
                else:
                    kept.append(make_shape(det, by_name[det.class_name], frame.frame, frame.width, frame.height))
            for shape in kept:
                x0, y0, x1, y1 = _bounds(shape["points"])
                coco["annotations"].append({
                    "id": len(coco["annotations"]) + 1, "image_id": frame.frame + 1,
                    "category_id": cat_of[next(lab.name for lab in labels if lab.id == shape["label_id"])],
                    "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)], "area": round((x1 - x0) * (y1 - y0), 2),
                    "iscrowd": 0, "score": shape["score"],
                    **({"segmentation": [shape["points"]]} if shape["type"] == "polygon" else {})})
            replaced = ours.get(frame.frame, []) if options.replace else []
            old_shapes += replaced
            new_shapes += kept
            summary.frames_annotated += bool(kept)
            names = Counter(next(lab.name for lab in labels if lab.id == s["label_id"]) for s in kept)
            plan.append(f"task {task_id} frame {frame.frame} ({frame.name}): {verb} {len(kept)} shapes"
                        + (f" [{', '.join(f'{n} x{c}' for n, c in sorted(names.items()))}]" if kept else "")
                        + (f", replacing {len(replaced)}" if replaced else ""))
        if not options.dry_run:
            if old_shapes:
                api.delete_shapes(task_id, old_shapes)
            if new_shapes:
                api.create_shapes(task_id, new_shapes)
        summary.shapes_uploaded += len(new_shapes)
        summary.shapes_replaced += len(old_shapes)
    summary.skipped_unknown_label = sum(unknown.values())
    summary.unknown_labels = dict(unknown)
    if unknown:
        log.warning("task %d: the model predicts classes the task has no label for (not created): %s", task_id,
                    ", ".join(f"{k} x{v}" for k, v in sorted(unknown.items())))
    return summary, coco


def _bounds(points: list[float]) -> tuple[float, float, float, float]:
    xs, ys = points[0::2], points[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def annotate(api: Any, task_ids: list[int], predictor: Predictor, options: AnnotateOptions, output_dir: Path,
             frames_root: Path) -> AnnotateResult:
    """Pre-annotate every task in ``task_ids`` and write each task's predictions and one summary.

    Args:
        api: a :class:`~rfdetr_trainer.integrations.cvat.tasks.TaskApi`.
        predictor: runs the model (:func:`load_predictor`).
        output_dir: ``task-<id>/predictions.coco.json`` (images = selected frames, ``score`` on each
            annotation), ``task-<id>/coco_results.json`` and ``annotate_summary.json``, written atomically.
        frames_root: cache of downloaded frames, ``task-<id>-frames/`` per task.
    """
    if not task_ids:
        raise ConfigError("no CVAT task ids given", hint="pass --cvat-task-ids 1 2")
    output_dir = Path(output_dir)
    plan: list[str] = []
    summaries = []
    for task_id in dict.fromkeys(task_ids):
        summary, coco = annotate_task(api, task_id, predictor, options, frames_root / f"task-{task_id}-frames", plan)
        folder = output_dir / f"task-{task_id}"
        write_text_atomic(folder / "predictions.coco.json", json.dumps(coco))
        results = [{k: a[k] for k in ("image_id", "category_id", "bbox", "score")} for a in coco["annotations"]]
        write_text_atomic(folder / "coco_results.json", json.dumps(results))
        summary.coco_path = str(folder / "predictions.coco.json")
        log.info("%s", summary.line())
        summaries.append(summary)
    summary_path = output_dir / SUMMARY_NAME
    result = AnnotateResult(output_dir, summary_path, summaries, options.dry_run, plan)
    write_text_atomic(summary_path, json.dumps({**result.to_dict(), "thresholds": {
        "overall": options.thresholds.overall, "per_class": options.thresholds.per_class,
        "source": options.thresholds.source}, "frames": options.frames, "replace": options.replace}, indent=2))
    return result


def annotate_from_settings(settings: Any, model_path: Path, *, frames: str = "unlabeled",
                           thresholds: str | None = None, replace: bool = False, dry_run: bool = False,
                           output: Path | None = None) -> AnnotateResult:
    """``rfdetr-trainer annotate``: connect to CVAT with ``settings.data.cvat``, load the model, annotate."""
    from rfdetr_trainer.integrations.cvat.base import connection_from_config, host_slug
    from rfdetr_trainer.integrations.cvat.tasks import make_task_api

    if frames not in ("unlabeled", "all"):
        raise ConfigError(f"--frames: {frames!r} is not one of unlabeled, all")
    cvat = settings.data.cvat
    if not cvat.task_ids:
        raise ConfigError("no CVAT task ids given", hint="pass --cvat-task-ids 1 2")
    conn = connection_from_config(cvat)
    from rfdetr_trainer.integrations.rfdetr.inference import load_backend

    loaded: list[Any] = []  # the model loads once, and only after the thresholds files were looked for

    def backend() -> Any:
        if not loaded:
            loaded.append(load_backend(Path(model_path)))
        return loaded[0]

    limits = resolve_thresholds(thresholds, settings.validation.confidence_threshold, Path(model_path),
                                lambda: backend().thresholds)
    predictor = predictor_for(backend(), floor=min(DETECTION_FLOOR, limits.lowest),
                              iou_threshold=settings.validation.iou_threshold)
    output_dir = Path(output) if output else Path(settings.experiment.output_dir) / "annotate"
    frames_root = Path(settings.data.cache_dir) / "cvat" / host_slug(conn.host)
    api = make_task_api(conn, cvat.downloader)
    try:
        options = AnnotateOptions(frames=frames, thresholds=limits, replace=replace,  # type: ignore[arg-type]
                                  dry_run=dry_run)
        return annotate(api, list(cvat.task_ids), predictor, options, output_dir, frames_root)
    finally:
        api.close()
