"""Shared fixtures: an isolated environment and tiny synthetic datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rfdetr_trainer.synthetic import make_dataset

# Fixtures that start loopback peers (CVAT test server, moto S3) and isolate ClearML; see tests/support.
pytest_plugins = ["support.source_fixtures", "support.clearml_fixtures"]

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


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path):
    """One tiny real training (Nano from scratch, 224 px, 1 epoch, CPU) on ``tiny_dataset``, shared by the session.

    Returns the run folder (``RunPaths``); its best checkpoint is ``checkpoints/checkpoint_best_total.pth``.
    Read-only for tests: copy what you change.
    """
    import shutil

    from rfdetr_trainer.pipeline.context import run_paths
    from rfdetr_trainer.schemas import ModelConfig, TrainingConfig
    from rfdetr_trainer.services.train import train

    root = tmp_path_factory.mktemp("trained")
    paths = run_paths(root, "tiny")
    model = ModelConfig.model_validate({"model_type": "nano", "pretrain_weights": "none"})
    training = TrainingConfig.model_validate({"epochs": 1, "batch_size": 4, "grad_accum_steps": 1,
                                              "resolution": 224, "device": "cpu", "num_workers": 0})
    train(model, training, tiny_dataset, paths, tensorboard=False, show_progress=False)
    yield paths
    shutil.rmtree(root, ignore_errors=True)
