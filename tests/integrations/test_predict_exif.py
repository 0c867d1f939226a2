"""predict on camera JPEGs with an EXIF orientation: the drawn boxes sit on the objects (issue 8, deliverable 3).

A trained model can't be relied on to find a given object after one epoch, so the model here is a stand-in that
detects the one white square in whatever pixels it is handed (rfdetr's ``predict(images, threshold)`` contract,
returning ``supervision.Detections``). Everything else is the real predict stage: image loading, drawing, the
written files. The check is that the results, the recorded image size and the drawn picture share one frame.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "coco"))
from coco_fixtures import jpeg_bytes  # noqa: E402

from rfdetr_trainer.schemas import ValidationConfig  # noqa: E402
from rfdetr_trainer.services.predict import predict  # noqa: E402


class WhiteSquareDetector:
    """Finds the bright square in each image it is given, as rfdetr's model.predict would return it."""

    class_names = ["thing"]

    def predict(self, images, threshold=0.5):
        import supervision as sv

        out = []
        for img in images:
            gray = np.asarray(img.convert("L"))
            ys, xs = np.nonzero(gray > 200)
            out.append(sv.Detections(xyxy=np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=float),
                                     confidence=np.array([0.9]), class_id=np.array([0])))
        return out if len(out) > 1 else out[0]


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
    assert (np.abs(ring - ring.mean(axis=1, keepdims=True)).max(axis=1) > 30).mean() > 0.5  # coloured outline
