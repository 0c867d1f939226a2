"""Throughput defaults handed to rfdetr: data-loader knobs from the machine, GPU augmentation, compile, image cache.

Each one is measured by ``benchmarks/bench_train_throughput.py``; ``training.*`` settings override them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rfdetr_trainer.schemas import TrainingConfig

#: More loader processes than this stop paying for a Nano/Small-sized model and cost start-up time and memory.
MAX_AUTO_WORKERS = 8


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which containers and ``taskset`` narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def auto_num_workers(cpus: int | None = None) -> int:
    """One loader worker per CPU, leaving one for the training process itself, at most :data:`MAX_AUTO_WORKERS`."""
    cpus = usable_cpus() if cpus is None else cpus
    return max(1, min(MAX_AUTO_WORKERS, cpus - 1))


def uses_cpu(device: str) -> bool:
    """Whether ``training.device`` pins training to the CPU."""
    return device.split(":")[0] == "cpu"


def loader_kwargs(training: TrainingConfig) -> dict[str, Any]:
    """``RFDETR.train``/``TrainConfig`` keywords for the data loaders and the augmentation backend.

    ``None`` settings are left out so rfdetr's own machine-derived defaults apply (pinned memory on CUDA,
    persistent workers whenever there are workers, prefetch 2).
    """
    kwargs: dict[str, Any] = {
        "num_workers": auto_num_workers() if training.num_workers is None else training.num_workers,
    }
    for name in ("pin_memory", "persistent_workers", "prefetch_factor"):
        value = getattr(training, name)
        if value is not None:
            kwargs[name] = value
    backend = training.augmentation_backend
    if backend == "auto":
        # rfdetr's "auto" picks kornia (augmentation on the GPU, after the batch is transferred) when CUDA is
        # there and kornia is installed, else its CPU pick; a run pinned to the CPU keeps the CPU pipeline.
        backend = "cpu" if uses_cpu(training.device) else "auto"
    kwargs["augmentation_backend"] = backend
    return kwargs


def apply_model_options(model: Any, training: TrainingConfig) -> None:
    """Model-config switches rfdetr reads when it builds its Lightning module (``compile``)."""
    if training.compile:
        model.model_config.compile = True


def cache_callbacks(training: TrainingConfig, run_root: Path) -> list[Any]:
    """The image-cache callback for ``training.cache`` (none for ``none``); disk caches live in ``<run>/cache``."""
    from rfdetr_trainer.integrations.rfdetr.image_cache import make_callback

    callback = make_callback(training.cache, cache_max_gb=training.cache_max_gb, cache_dir=Path(run_root) / "cache")
    return [callback] if callback is not None else []
