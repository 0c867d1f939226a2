"""predict on camera JPEGs with an EXIF orientation: the drawn boxes sit on the objects (issue 8, deliverable 3).

A trained model can't be relied on to find a given object after one epoch, so the model here is a stand-in that
detects the one white square in whatever pixels it is handed (rfdetr's ``predict(images, threshold)`` contract,
returning ``supervision.Detections``). Everything else is the real predict stage: image loading, drawing, the
written files. The check is that the results, the recorded image size and the drawn picture share one frame.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.coco_fixtures import jpeg_bytes

from rfdetr_trainer.integrations.rfdetr.inference import Backend
from rfdetr_trainer.schemas import ValidationConfig
from rfdetr_trainer.services.predict import predict


class WhiteSquareDetector(Backend):
    """Finds the bright square in the batch the backend API hands a model (as a real model sees the image: resized
    to its resolution, after the EXIF orientation), and answers in rfdetr's raw output form."""

    kind = "test"

    def __init__(self) -> None:
        super().__init__(class_names=["thing"], resolution=64)

    def forward(self, batch):
        boxes, logits = [], []
        for img in np.asarray(batch, dtype=np.float32):
            gray = img.mean(axis=0)
            ys, xs = np.nonzero(gray > (gray.min() + gray.max()) / 2)
            height, width = gray.shape
            x0, x1, y0, y1 = xs.min() / width, (xs.max() + 1) / width, ys.min() / height, (ys.max() + 1) / height
            boxes.append([[(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]])
            logits.append([[6.0]])  # one query, one class, sigmoid ~0.998
        return np.array(boxes, dtype=np.float32), np.array(logits, dtype=np.float32)


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_drawn_box_sits_on_the_object(tmp_path, orientation):
    src = tmp_path / "photos"
    src.mkdir()
    # Stored 48x64 with the white square at x 8..24, y 7..23 of the stored pixels.
    (src / "cam.jpg").write_bytes(jpeg_bytes((48, 64), (0, 0, 0), orientation=orientation, box=(8, 7, 24, 23)))
    result = predict(WhiteSquareDetector(), src, tmp_path / "pred", ValidationConfig(confidence_threshold=0.1))
    assert result.num_detections == 1
    coco = json.loads((tmp_path / "pred" / "predictions.coco.json").read_text())
    (image,) = coco["images"]
    x, y, w, h = json.loads((tmp_path / "pred" / "coco_results.json").read_text())[0]["bbox"]
    from PIL import Image

    (drawn_path,) = sorted((tmp_path / "pred" / "images").iterdir())
    with Image.open(drawn_path) as drawn:
        assert drawn.size == (image["width"], image["height"])  # results and picture share one frame
        frame = np.asarray(drawn.convert("RGB")).astype(int)
    # The square is white inside the box, and the box outline is drawn just around it.
    inner = frame[int(y) + 3:int(y + h) - 3, int(x) + 3:int(x + w) - 3]
    assert inner.min() > 180
    ring = np.concatenate([frame[max(0, int(y) - 1), int(x):int(x + w)], frame[int(y + h) - 1, int(x):int(x + w)]])
    # coloured outline: at least one of the two edges (the model sees a 64 px copy, so an edge may land a pixel off)
    assert (np.abs(ring - ring.mean(axis=1, keepdims=True)).max(axis=1) > 30).mean() >= 0.5
