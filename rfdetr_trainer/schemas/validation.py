"""ValidationConfig: thresholds used by predict and evaluation."""

from pydantic import Field

from rfdetr_trainer.schemas.base import Section


class ValidationConfig(Section):
    """Detection thresholds."""

    confidence_threshold: float = Field(0.5, ge=0, le=1, description="keep detections scoring at least this")
    iou_threshold: float = Field(0.5, ge=0, le=1, description="IoU for class-agnostic NMS of predictions")
    batch_size: int = Field(4, ge=1, le=1024, description="images per forward pass in predict and evaluate")
    after_training: bool = Field(True, description="train ends by evaluating its best checkpoint on the valid "
                                 "split (evaluation/valid/, report.html); off saves that time")
