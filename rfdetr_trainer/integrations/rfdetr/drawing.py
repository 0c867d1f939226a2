"""Drawing predictions: boxes and labels on an image, and a grid of images (for predict and TensorBoard)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rfdetr_trainer.integrations.rfdetr.inference import ImagePrediction, open_image


def annotate(prediction: ImagePrediction, class_names: list[str]) -> Any:
    """The image with boxes and labels drawn (a numpy RGB array), upright as its EXIF orientation says."""
    import supervision as sv

    image = prediction.image if prediction.image is not None else open_image(prediction.path)
    frame = np.array(image)
    if not len(prediction.scores):
        return frame
    det = sv.Detections(xyxy=np.asarray(prediction.boxes_xyxy, dtype=np.float32),
                        confidence=np.asarray(prediction.scores, dtype=np.float32),
                        class_id=np.asarray(prediction.labels, dtype=int))
    names = [class_names[c] if 0 <= c < len(class_names) else str(c) for c in det.class_id]
    text = [f"{n} {s:.2f}" for n, s in zip(names, det.confidence)]
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
