"""TrainingConfig: optimisation, schedule, checkpoints and devices."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from rfdetr_trainer.schemas.base import Section


class TrainingConfig(Section):
    """How to train."""

    epochs: int = Field(50, ge=1, description="number of training epochs")
    batch_size: int = Field(4, ge=1, description="images per device per step")
    grad_accum_steps: int = Field(4, ge=1, description="gradient accumulation steps")
    lr: float = Field(1e-4, gt=0, description="learning rate of the decoder")
    lr_encoder: float | None = Field(None, gt=0, description="learning rate of the backbone (default: rfdetr's)")
    resolution: int | None = Field(
        None, ge=32, description="square input size; must divide by the model's block size (default: model's)"
    )
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    use_ema: bool = Field(True, description="keep an exponential moving average of the weights")
    early_stopping: bool = Field(False, description="stop when validation mAP stops improving")
    early_stopping_patience: int = Field(10, ge=1, description="epochs without improvement before stopping")
    checkpoint_interval: int = Field(10, ge=1, description="save a numbered checkpoint every N epochs")
    resume: Path | None = Field(None, description="resume from a Lightning last.ckpt (or 'auto' via --resume)")
    seed: int = Field(42, description="random seed")
    num_workers: int = Field(2, ge=0, description="data-loader worker processes")
    amp: bool | None = Field(None, description="mixed precision (default: on for CUDA, off for CPU)")
    devices: int | str = Field("auto", description="Lightning devices: a count or 'auto'")
    strategy: str = Field("auto", description="Lightning strategy: auto, ddp, ddp_spawn, ...")
    num_nodes: int = Field(1, ge=1, description="nodes for multi-node DDP")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps (for checks)")
    run_test: bool = Field(False, description="evaluate on the test split after training")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError(f"unknown device {value!r}; use auto, cpu, cuda, cuda:N or mps")
        return value

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: int | str) -> int | str:
        # Lightning takes a count, -1 (all), "auto", or a comma list of indexes ("0,1"); anything else fails
        # there only after the model is built, as a TypeError.
        text = str(value).strip()
        if isinstance(value, int) and (value >= 1 or value == -1):
            return value
        if text == "auto" or re.fullmatch(r"-1|[1-9]\d*", text) or re.fullmatch(r"\d+(,\d+)*,|\d+(,\d+)+", text):
            return text
        raise ValueError(f"{value!r} is not a device count; use a number >= 1, -1 (all), 'auto' or a list like 0,1")
