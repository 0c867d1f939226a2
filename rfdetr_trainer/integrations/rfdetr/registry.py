"""Model types -> rfdetr classes, with the facts needed before rfdetr is imported.

The table is static so that a bad resolution or model type fails in milliseconds, not after a 5 s
``import rfdetr``; ``tests/integrations/rfdetr/test_rfdetr_registry.py`` checks it against rfdetr's own config classes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import CheckpointError, ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """What the project needs to know about one model type."""

    name: str
    class_name: str
    patch_size: int
    num_windows: int
    default_resolution: int
    train_config_name: str = "TrainConfig"  # the rfdetr.config class RFDETR.train() builds for this model

    @property
    def config_name(self) -> str:
        """The ``rfdetr.config`` class holding this model's architecture defaults."""
        return f"{self.class_name}Config"

    @property
    def block_size(self) -> int:
        """Resolutions must be multiples of this."""
        return self.patch_size * self.num_windows


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("nano", "RFDETRNano", 16, 2, 384),
        ModelSpec("small", "RFDETRSmall", 16, 2, 512),
        ModelSpec("medium", "RFDETRMedium", 16, 2, 576),
        ModelSpec("base", "RFDETRBase", 14, 4, 560),
        ModelSpec("large", "RFDETRLarge", 16, 2, 704),
        ModelSpec("seg-preview", "RFDETRSegPreview", 12, 2, 432, "SegmentationTrainConfig"),
        ModelSpec("seg-nano", "RFDETRSegNano", 12, 1, 312, "SegmentationTrainConfig"),
        ModelSpec("seg-small", "RFDETRSegSmall", 12, 2, 384, "SegmentationTrainConfig"),
        ModelSpec("seg-medium", "RFDETRSegMedium", 12, 2, 432, "SegmentationTrainConfig"),
        ModelSpec("seg-large", "RFDETRSegLarge", 12, 2, 504, "SegmentationTrainConfig"),
        ModelSpec("seg-xlarge", "RFDETRSegXLarge", 12, 2, 624, "SegmentationTrainConfig"),
        ModelSpec("seg-2xlarge", "RFDETRSeg2XLarge", 12, 2, 768, "SegmentationTrainConfig"),
        ModelSpec("keypoint-preview", "RFDETRKeypointPreview", 12, 2, 576, "KeypointTrainConfig"),
    )
}


def get_spec(model_type: str) -> ModelSpec:
    """The spec of a model type, or a ConfigError listing the known ones."""
    try:
        return MODELS[model_type]
    except KeyError:
        raise ConfigError(
            f"model.model_type: unknown model type {model_type!r}", hint="choose one of " + ", ".join(MODELS)
        ) from None


def check_resolution(spec: ModelSpec, resolution: int | None) -> int:
    """The resolution to use, or a ConfigError when it does not divide by the model's block size."""
    if resolution is None:
        return spec.default_resolution
    if resolution % spec.block_size:
        lower = max(spec.block_size, resolution // spec.block_size * spec.block_size)
        raise ConfigError(
            f"training.resolution: {resolution} is not divisible by {spec.block_size} "
            f"(patch size {spec.patch_size} x {spec.num_windows} windows of the {spec.name} model)",
            hint=f"use {lower} or {lower + spec.block_size}",
        )
    return resolution


def resolve_weights(spec: ModelSpec, pretrain_weights: str | None) -> str | None:
    """Turn the user's choice into what rfdetr's constructor takes, failing fast when it can't work offline.

    ``None`` trains from scratch; ``"default"`` is the published checkpoint, usable only when it is already in
    rfdetr's cache (``RF_HOME`` or ``~/.roboflow/models``) or the internet can be reached; anything else is a
    local file that must exist.
    """
    if pretrain_weights is None:
        return None
    if pretrain_weights != "default":
        path = Path(pretrain_weights).expanduser()
        if not path.is_file():
            raise CheckpointError(
                f"model.pretrain_weights: {path} does not exist",
                hint="pass an existing .pth file, 'default' for the published weights, or 'none'",
            )
        return str(path)
    published = _published_name(spec)
    cached = Path(os.environ.get("RF_HOME", Path.home() / ".roboflow" / "models")) / published
    if cached.is_file():
        return str(cached)
    if not _online():
        raise ConfigError(
            f"model.pretrain_weights: the published {published} is not cached and the internet can't be reached",
            hint="pass --pretrain-weights PATH to a local .pth file, or --pretrain-weights none to train from scratch",
        )
    return published


def _published_name(spec: ModelSpec) -> str:
    import rfdetr.config

    config_class: Any = getattr(rfdetr.config, spec.config_name)
    return str(config_class.model_fields["pretrain_weights"].default)


def _online(host: str = "storage.googleapis.com", timeout: float = 2.0) -> bool:
    import socket

    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
