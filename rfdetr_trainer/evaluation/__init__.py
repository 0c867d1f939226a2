"""Torch-free evaluation of detections against COCO ground truth.

``matching`` pairs detections with ground truth, ``confusion`` and ``curves`` turn the pairs into a confusion
matrix, precision/recall/F1 curves and best-F1 thresholds, ``cocomap`` computes the standard COCO metrics,
``core.evaluate_coco`` puts them together and ``files`` writes them. Only numpy and a COCO evaluator are imported.
"""
