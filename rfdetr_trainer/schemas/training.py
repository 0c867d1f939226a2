"""TrainingConfig: optimisation, schedule, checkpoints and devices."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from rfdetr_trainer.schemas.base import Section


class TrainingConfig(Section):
    """How to train."""

    epochs: int = Field(50, ge=1, description="number of training epochs")
    batch_size: int | Literal["auto"] = Field(
        4, description="images per device per step, or 'auto' (rfdetr probes the largest that fits the GPU)")
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
    num_workers: int | None = Field(
        None, ge=0, description="data-loader worker processes (default: from the CPU count, at most 8)"
    )
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

    # --- rfdetr 1.11 knobs, named as in rfdetr's TrainConfig (augment and max_time are the project's own)
    augment: Literal["none", "conservative", "aggressive", "aerial", "industrial"] | None = Field(
        None, description="augmentation preset from rfdetr.datasets.aug_configs (default: rfdetr's horizontal flip)")
    aug_config: Path | None = Field(
        None, description="JSON/YAML file of Albumentations transforms ({name: {params}}), instead of a preset")
    augmentation_backend: Literal["cpu", "auto", "torchvision", "albumentations", "kornia"] = Field(
        "auto", description="rfdetr augmentation backend: auto (kornia on a GPU when installed; the CPU pick when "
        "training is pinned to the CPU), cpu, torchvision, albumentations, kornia")
    multi_scale: Literal["off", "per-batch", "per-sample"] = Field(
        "per-batch", description="multi-scale training: off, per-batch or per-sample")
    lr_scheduler: Literal["step", "cosine"] = Field("step", description="learning-rate schedule")
    warmup_epochs: float = Field(0.0, ge=0, description="linear learning-rate warm-up, in epochs")
    eval_interval: int = Field(1, ge=1, description="validate every N epochs (the last epoch always validates)")
    eval_max_dets: int = Field(500, ge=1, description="detections per image kept for COCO evaluation")
    save_dataset_grids: bool = Field(False, description="render train/valid sample grids into the checkpoints folder")
    max_time: str | None = Field(
        None, description="time budget, e.g. 90m, 2h, 1.5h or DD:HH:MM:SS; stops at a step and keeps checkpoints")

    # --- throughput: image cache, data loader, compiler
    cache: Literal["ram", "disk", "none"] = Field(
        # Off by default until it measures a gain: on 2 CPU cores the cached pipeline ran 0.99-1.5x the uncached
        # one (rfdetr's per-sample transforms dominate once the decode is gone); the GPU figure is not measured yet.
        "none", description="decode and resize each image once: ram, disk (a mapped file) or none"
    )
    cache_max_gb: float = Field(
        16.0, gt=0, description="RAM the image cache may take (also capped at half the free memory); beyond: disk"
    )
    compile: bool = Field(False, description="torch.compile the model (rfdetr's compile; CUDA only)")
    pin_memory: bool | None = Field(None, description="pinned host memory for batches (default: on with CUDA)")
    persistent_workers: bool | None = Field(None, description="keep loader workers across epochs (default: on)")
    prefetch_factor: int | None = Field(None, ge=1, description="batches each loader worker prepares ahead")

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size_word(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ValueError("must be at least 1 or 'auto'")
        return value

    @field_validator("multi_scale", mode="before")
    @classmethod
    def _multi_scale_bool(cls, value: object) -> object:
        words = {"true": "per-batch", "on": "per-batch", "yes": "per-batch", "false": "off", "no": "off"}
        if isinstance(value, bool):
            return "per-batch" if value else "off"
        return words.get(value.strip().lower(), value) if isinstance(value, str) else value

    @field_validator("max_time")
    @classmethod
    def _max_time_format(cls, value: str | None) -> str | None:
        if value is not None:
            max_time_seconds(value)
        return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def max_time_seconds(text: str) -> int:
    """Seconds of a time budget written as ``90m``, ``2h``, ``1.5h``, ``45s``, ``HH:MM:SS`` or ``DD:HH:MM:SS``.

    Raises:
        ValueError: the text is none of those (pydantic reports it under ``training.max_time``).
    """
    text = str(text).strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    elif re.fullmatch(r"\d+(:\d+){2,3}", text):
        parts = [int(p) for p in text.split(":")]
        seconds = sum(p * u for p, u in zip(reversed(parts), (1, 60, 3600, 86400)))
    else:
        raise ValueError("expected a duration such as 90m, 2h, 1.5h, 45s, HH:MM:SS or DD:HH:MM:SS")
    if seconds < 1:
        raise ValueError("must be at least one second")
    return int(seconds)
