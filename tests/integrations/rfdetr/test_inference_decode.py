"""Decoding raw outputs: only trained classes, top-k as rfdetr, EXIF orientation applied (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rfdetr_trainer.integrations.rfdetr.inference import decode, open_image


def test_spare_logit_slots_never_become_detections_and_do_not_take_top_k_places():
    rng = np.random.default_rng(0)
    queries, trained = 50, 3
    logits = rng.normal(-4, 1, size=(1, queries, trained + 1)).astype(np.float32)
    logits[..., trained] = 8.0  # the spare slot scores highest everywhere, as an untrained head's can
    boxes = rng.uniform(0.2, 0.8, size=(1, queries, 4)).astype(np.float32)
    (xyxy, scores, labels), = decode(boxes, logits, [(100, 200)], num_classes=trained, threshold=0.0,
                                     num_select=40)
    assert len(labels) == 40 and labels.max() < trained  # 40 places, all spent on trained classes
    expected = np.sort(1 / (1 + np.exp(-logits[0, :, :trained].ravel())))[::-1][:40]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    assert (xyxy[:, 2] <= 200).all() and (xyxy[:, 3] <= 100).all() and (xyxy >= 0).all()


def test_boxes_are_scaled_to_the_original_image_and_thresholded():
    logits = np.full((1, 2, 2), -10.0, dtype=np.float32)
    logits[0, 0, 1] = 2.0  # query 0, class 1, score 0.88
    boxes = np.array([[[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1]]], dtype=np.float32)
    (xyxy, scores, labels), = decode(boxes, logits, [(100, 300)], num_classes=2, threshold=0.5)
    assert labels.tolist() == [1]
    np.testing.assert_allclose(xyxy[0], [120, 30, 180, 70], atol=1e-4)


def _exif_rotated(upright: Image.Image, path, orientation: int) -> None:
    """Store ``upright`` the way a camera does: pixels unrotated, orientation in EXIF."""
    stored = upright.transpose({6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270,
                                3: Image.Transpose.ROTATE_180}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_open_image_applies_the_exif_orientation(tmp_path, orientation):
    upright = Image.new("RGB", (160, 96), (10, 20, 30))
    upright.paste((250, 0, 0), (0, 0, 40, 20))  # a red block at the top left of the upright picture
    path = tmp_path / f"o{orientation}.png"
    _exif_rotated(upright, path, orientation)
    with Image.open(path) as raw:
        assert raw.size != upright.size or orientation == 3
    img = open_image(path)
    assert img.size == (160, 96)
    assert np.array_equal(np.asarray(img), np.asarray(upright))
