"""Confusion matrix, curves and thresholds on hand-built detections whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from rfdetr_trainer.evaluation.core import evaluate_coco
from rfdetr_trainer.evaluation.curves import compute_curves
from rfdetr_trainer.evaluation.matching import iou_matrix, match_any_class, match_by_score


def _dataset(boxes):
    """One 100x100 image with ground-truth ``boxes`` [(xywh, category_id)] over classes a (1) and b (2)."""
    return {"images": [{"id": 1, "file_name": "one.jpg", "width": 100, "height": 100}],
            "annotations": [{"id": k + 1, "image_id": 1, "category_id": c, "bbox": list(b), "area": b[2] * b[3],
                             "iscrowd": 0} for k, (b, c) in enumerate(boxes)],
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}


def _det(bbox, category, score):
    return {"image_id": 1, "category_id": category, "bbox": list(bbox), "score": score}


A1, B1, A2 = (0, 0, 10, 10), (20, 20, 10, 10), (40, 40, 10, 10)


def test_confusion_matrix_of_known_predictions():
    gt = _dataset([(A1, 1), (B1, 2), (A2, 1)])
    dets = [
        _det(A1, 1, 0.9),  # true positive a
        _det(B1, 1, 0.8),  # a b box called a
        _det((60, 60, 10, 10), 2, 0.7),  # b where nothing is: background row
        _det((0.5, 0, 10, 10), 1, 0.6),  # a duplicate on A1: background row
        _det(A2, 1, 0.1),  # below the matrix confidence: A2 is missed
    ]
    ev = evaluate_coco(gt, dets, iou=0.5, confidence=0.5)
    #                    pred a  pred b  background
    expected = np.array([[1,     0,      1],   # true a: A1 found, A2 missed
                         [1,     0,      0],   # true b: B1 predicted as a
                         [1,     1,      0]])  # background: the duplicate a and the stray b
    assert ev.confusion.matrix.tolist() == expected.tolist()
    assert ev.confusion.to_dict(ev.class_names)["labels"] == ["a", "b", "background"]
    (image,) = ev.images
    assert (image.false_positives, image.false_negatives) == (3, 2)
    np.testing.assert_allclose(ev.confusion.normalized()[0], [0.5, 0, 0.5])


@pytest.mark.parametrize("threshold, expected", [(0.5, [True, False, False]), (0.95, [False, True, False])])
def test_score_greedy_matching_gives_the_box_to_the_higher_score(threshold, expected):
    gt = np.array([[0, 0, 10, 10]], dtype=float)
    dets = np.array([[0, 0, 10, 9], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=float)
    ious = iou_matrix(dets, gt)
    tp = match_by_score(ious, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 0]), np.array([0]), threshold)
    # at 0.5 the 0.9 detection claims the box though the 0.8 one overlaps better; at 0.95 only the 0.8 one can
    assert tp.tolist() == expected


def test_any_class_matching_is_one_to_one_in_descending_iou():
    ious = np.array([[0.9, 0.6], [0.8, 0.0], [0.55, 0.7]])
    det, gt = match_any_class(ious, 0.5)
    assert sorted(zip(det.tolist(), gt.tolist())) == [(0, 0), (2, 1)]


def test_f1_curve_and_best_threshold_of_known_detections():
    # one class, two boxes; detections scoring 0.9 (TP), 0.8 (FP), 0.7 (TP)
    curves = compute_curves(np.array([0.9, 0.8, 0.7]), np.array([0, 0, 0]), np.array([True, False, True]),
                            np.array([2]))
    at = {c: int(np.searchsorted(curves.confidence, c)) for c in (0.85, 0.75, 0.7)}
    assert curves.precision[0, at[0.85]] == 1.0 and curves.recall[0, at[0.85]] == 0.5
    assert curves.precision[0, at[0.75]] == 0.5 and curves.recall[0, at[0.75]] == 0.5
    assert curves.f1[0, at[0.7]] == pytest.approx(0.8)
    best = curves.best_threshold(0)
    # F1 0.8 holds from 0 to 0.7; the highest confidence on that plateau is chosen
    assert best["confidence"] == pytest.approx(0.7) and best["f1"] == pytest.approx(0.8)
    assert best["precision"] == pytest.approx(2 / 3) and best["recall"] == 1.0
    # PR curve: precision 1 up to recall 0.5, then 2/3 up to recall 1
    assert curves.pr_precision[0, 50] == 1.0 and curves.pr_precision[0, 51] == pytest.approx(2 / 3)


def test_thresholds_per_class_and_overall():
    gt = _dataset([(A1, 1), (B1, 2)])
    dets = [_det(A1, 1, 0.9), _det(B1, 2, 0.4), _det((70, 70, 10, 10), 2, 0.6)]
    ev = evaluate_coco(gt, dets)
    assert ev.thresholds["per_class"] == {"a": pytest.approx(0.9), "b": pytest.approx(0.4)}
    rows = {r["class"]: r for r in ev.per_class}
    assert rows["a"]["f1"] == 1.0 and rows["b"]["f1"] == pytest.approx(2 / 3)
    assert rows["a"]["num_gt"] == 1 and rows["a"]["AP50"] == pytest.approx(1.0)


def test_detections_of_unknown_categories_and_below_the_floor_are_not_scored():
    gt = _dataset([(A1, 1)])
    ev = evaluate_coco(gt, [_det(A1, 1, 0.9), _det(A1, 7, 0.9), _det(A2, 1, 0.0005)])
    assert ev.metrics["num_detections"] == 1 and ev.metrics["mAP50"] == pytest.approx(1.0)


def test_plot_png_follows_the_umask(tmp_path):
    """A figure is written through a 0600 temporary; the renamed PNG gets the mode open() would give it."""
    import os
    import stat

    from rfdetr_trainer.integrations.plots import confusion_matrix_png

    old = os.umask(0o022)
    try:
        path = confusion_matrix_png([[2, 0], [1, 1]], ["a", "b"], tmp_path / "plots" / "confusion_matrix.png")
    finally:
        os.umask(old)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left beside it
