"""Shared fixtures: an isolated environment and tiny synthetic datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rfdetr_trainer.synthetic import make_dataset

_OURS = ("RFDETR_TRAINER_", "CVAT_", "MINIO_")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable from the developer's shell may leak into a test's settings."""
    for name in list(os.environ):
        if name.startswith(_OURS):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 images of 128 px in rfdetr layout (train/valid/test). Read-only for tests."""
    return make_dataset(tmp_path_factory.mktemp("data") / "tiny", num_images=16, image_size=128, seed=3)


@pytest.fixture(autouse=True)
def _isolated_cache_and_clearml(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The user cache folder (CVAT/S3 downloads) is a temp dir, and no ClearML credential of the developer's shell
    turns ClearML's ``auto`` mode on."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    for name in list(os.environ):
        if name.startswith("CLEARML_API_"):
            monkeypatch.delenv(name)
