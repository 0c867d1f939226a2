"""ExportConfig: exported formats and their options."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from rfdetr_trainer.schemas.base import Section

ExportFormat = Literal["onnx", "torchscript"]


class ExportConfig(Section):
    """What to export and how."""

    format: list[ExportFormat] = Field(["onnx"], description="formats to export: onnx, torchscript")
    half: bool = Field(False, description="export in float16 (CUDA only for the parity check)")
    simplify: bool = Field(False, description="simplify the ONNX graph (onnxsim or onnxslim when installed)")
    opset: int = Field(17, ge=11, le=21, description="ONNX opset version")
    dynamic_batch: bool = Field(False, description="make the batch dimension dynamic")
    parity_atol: float = Field(1e-3, gt=0, description="max abs difference of boxes/logits vs PyTorch")
    check: bool = Field(True, description="run the exported model and compare it with PyTorch")
    evaluate: bool | None = Field(None, description="evaluate each exported file on a split and compare its mAP "
                                                    "with PyTorch (default: on in run, off in export)")
    max_map_drop: float = Field(0.01, ge=0, le=1, description="largest mAP50:95 loss (absolute) an export may have")

    @field_validator("format", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip().lower() for v in value.split(",") if v.strip()]
        return value
