"""TrainingConfig: optimisation, schedule, checkpoints and devices."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

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
    num_workers: int | None = Field(
        None, ge=0, description="data-loader worker processes (default: from the CPU count, at most 8)"
    )
    amp: bool | None = Field(None, description="mixed precision (default: on for CUDA, off for CPU)")
    devices: int | str = Field("auto", description="Lightning devices: a count or 'auto'")
    strategy: str = Field("auto", description="Lightning strategy: auto, ddp, ddp_spawn, ...")
    num_nodes: int = Field(1, ge=1, description="nodes for multi-node DDP")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps (for checks)")
    run_test: bool = Field(False, description="evaluate on the test split after training")
    # --- throughput: image cache, data loader, compiler
    cache: Literal["ram", "disk", "none"] = Field(
        "ram", description="decode and resize each image once: ram, disk (a mapped file) or none"
    )
    cache_max_gb: float = Field(
        16.0, gt=0, description="RAM the image cache may take (also capped at half the free memory); beyond: disk"
    )
    compile: bool = Field(False, description="torch.compile the model (rfdetr's compile; CUDA only)")
    pin_memory: bool | None = Field(None, description="pinned host memory for batches (default: on with CUDA)")
    persistent_workers: bool | None = Field(None, description="keep loader workers across epochs (default: on)")
    prefetch_factor: int | None = Field(None, ge=1, description="batches each loader worker prepares ahead")
    augmentation_backend: str = Field(
        "auto", description="rfdetr augmentation backend: auto (kornia on a GPU when installed), cpu, torchvision, "
        "albumentations, kornia"
    )
