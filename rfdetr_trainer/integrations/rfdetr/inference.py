"""Load a trained model and run it on images; drawing with supervision."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import CheckpointError
from rfdetr_trainer.integrations.rfdetr.checkpoint import check_checkpoint


@dataclass
class ImagePrediction:
    """Detections for one image, in pixels of the original image."""

    path: Path
    width: int
    height: int
    boxes_xyxy: list[list[float]]
    scores: list[float]
    labels: list[int]  # contiguous model labels, index into class_names


def load_model(checkpoint: Path) -> Any:
    """An rfdetr model restored from a training checkpoint (the class is read from the file).

    Raises:
        CheckpointError: the file is missing, not a checkpoint, or not an rfdetr checkpoint.
    """
    path = check_checkpoint(checkpoint)
    from rfdetr_trainer.integrations.rfdetr.trainer import quiet_libraries

    quiet_libraries()
    from rfdetr.detr import RFDETR

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return RFDETR.from_checkpoint(str(path), trust_checkpoint=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: not a loadable rfdetr checkpoint: {first[:200]}") from exc


def predict_images(model: Any, images: list[Path], *, threshold: float, iou_threshold: float,
                   batch_size: int = 4) -> Iterator[ImagePrediction]:
    """Run ``model`` over ``images`` in batches; detections above ``threshold``, after class-agnostic NMS."""
    from PIL import Image

    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        pil = []
        for path in chunk:
            with Image.open(path) as img:
                pil.append(img.convert("RGB"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = model.predict(pil, threshold=threshold)
        if not isinstance(results, list):
            results = [results]
        for path, image, det in zip(chunk, pil, results):
            if len(det) and iou_threshold < 1.0:
                det = det.with_nms(threshold=iou_threshold, class_agnostic=True)
            yield ImagePrediction(
                path=path,
                width=image.width,
                height=image.height,
                boxes_xyxy=[[float(v) for v in box] for box in det.xyxy],
                scores=[float(s) for s in det.confidence],
                labels=[int(c) for c in det.class_id],
            )


def annotate(prediction: ImagePrediction, class_names: list[str]) -> Any:
    """The image with boxes and labels drawn (a numpy RGB array)."""
    import numpy as np
    import supervision as sv
    from PIL import Image

    with Image.open(prediction.path) as img:
        frame = np.array(img.convert("RGB"))
    if not prediction.scores:
        return frame
    det = sv.Detections(
        xyxy=np.array(prediction.boxes_xyxy, dtype=np.float32),
        confidence=np.array(prediction.scores, dtype=np.float32),
        class_id=np.array(prediction.labels, dtype=int),
    )
    names = [class_names[c] if 0 <= c < len(class_names) else str(c) for c in prediction.labels]
    text = [f"{n} {s:.2f}" for n, s in zip(names, prediction.scores)]
    scale = max(frame.shape[:2]) / 640
    frame = sv.BoxAnnotator(thickness=max(1, round(2 * scale))).annotate(frame.copy(), det)
    return sv.LabelAnnotator(text_scale=max(0.3, 0.5 * scale), text_padding=2).annotate(frame, det, labels=text)


def grid(frames: list[Any], *, tile: int = 256, columns: int | None = None,
         background: tuple[int, int, int] = (24, 24, 24)) -> Any:
    """Tile frames (numpy arrays or PIL images) into one PIL image, each scaled to fill a ``tile`` px square."""
    import math

    from PIL import Image

    columns = columns or max(1, math.ceil(math.sqrt(len(frames))))
    rows = max(1, math.ceil(len(frames) / columns))
    sheet = Image.new("RGB", (columns * tile, rows * tile), background)
    for i, frame in enumerate(frames):
        img = frame if isinstance(frame, Image.Image) else Image.fromarray(frame)
        scale = tile / max(img.width, img.height)  # small images are enlarged too, so the grid stays readable
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
        x, y = (i % columns) * tile, (i // columns) * tile
        sheet.paste(img, (x + (tile - img.width) // 2, y + (tile - img.height) // 2))
    return sheet
