"""rfdetr-trainer: annotated images to a trained, exported RF-DETR detector in one pipeline."""

__version__ = "0.1.0"
