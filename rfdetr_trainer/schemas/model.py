"""ModelConfig: which RF-DETR variant and which starting weights."""

from __future__ import annotations

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

    @field_validator("pretrain_weights", mode="before")
    @classmethod
    def _none_word(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"none", "null", "scratch", ""}:
            return None
        return value
