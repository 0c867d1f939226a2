"""ModelConfig: which RF-DETR variant and which starting weights."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator

from rfdetr_trainer.schemas.base import Section

ModelType = Literal[
    "nano",
    "small",
    "medium",
    "base",
    "large",
    "seg-preview",
    "seg-nano",
    "seg-small",
    "seg-medium",
    "seg-large",
    "seg-xlarge",
    "seg-2xlarge",
    "keypoint-preview",
]

#: CLI names of the model types; ``integrations/rfdetr/registry.py`` maps each to its rfdetr class.
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)


class ModelConfig(Section):
    """Model variant and initial weights."""

    model_type: ModelType = Field("nano", description="RF-DETR variant: " + ", ".join(MODEL_TYPES))
    pretrain_weights: str | None = Field(
        "default",
        description="'default' (the published checkpoint, needs internet), a local .pth path, or 'none'",
    )
    num_classes: int | None = Field(None, ge=1, description="number of classes; default: from the dataset")
    # --- rfdetr 1.11 ModelConfig knobs (same names)
    num_queries: int | None = Field(None, ge=1, description="object queries (default: the model's; more: dense scenes)")
    freeze_encoder: bool = Field(False, description="keep the backbone's weights fixed (small datasets, small GPUs)")
    backbone_lora: bool = Field(False, description="LoRA adapters on the backbone (needs the [lora] extra: peft)")
    init_from: Path | None = Field(
        None, description="a checkpoint this tool wrote: start from its weights, class head mapped by class name")

    @field_validator("pretrain_weights", mode="before")
    @classmethod
    def _none_word(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"none", "null", "scratch", ""}:
            return None
        return value
