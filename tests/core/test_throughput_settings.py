"""--cache/--cache-max-gb/--compile reach TrainingConfig, and TrainingConfig reaches rfdetr's loader settings."""

from __future__ import annotations

import pytest

from rfdetr_trainer.cli.options import flag_names, overrides
from rfdetr_trainer.errors import ConfigError
from rfdetr_trainer.integrations.rfdetr.throughput import auto_num_workers, loader_kwargs
from rfdetr_trainer.schemas import TrainingConfig
from rfdetr_trainer.settings import load_settings


@pytest.mark.parametrize("params, key, value", [
    ({"cache": "disk"}, "cache", "disk"),
    ({"cache": "none"}, "cache", "none"),
    ({"cache_max_gb": 2.5}, "cache_max_gb", 2.5),
    ({"compile": True}, "compile", True),
    ({}, "cache", "none"),
    ({}, "compile", False),
])
def test_flags_set_training_keys(params, key, value):
    settings = load_settings(overrides=overrides(params), env_file=None, flag_names=flag_names())
    assert getattr(settings.training, key) == value


def test_bad_cache_mode_names_the_flag():
    with pytest.raises(ConfigError, match="--cache"):
        load_settings(overrides=overrides({"cache": "gpu"}), env_file=None, flag_names=flag_names())


@pytest.mark.parametrize("cpus, workers", [(1, 1), (2, 1), (4, 3), (16, 8), (64, 8)])
def test_auto_workers_from_cpu_count(cpus, workers):
    assert auto_num_workers(cpus) == workers


@pytest.mark.parametrize("fields, expected", [
    ({}, {"augmentation_backend": "auto"}),
    ({"device": "cpu"}, {"augmentation_backend": "cpu"}),
    ({"device": "cuda:1", "augmentation_backend": "torchvision"}, {"augmentation_backend": "torchvision"}),
    ({"num_workers": 0, "pin_memory": False, "persistent_workers": False, "prefetch_factor": 4},
     {"num_workers": 0, "pin_memory": False, "persistent_workers": False, "prefetch_factor": 4}),
])
def test_loader_kwargs(fields, expected):
    kwargs = loader_kwargs(TrainingConfig(**fields))
    for key, value in expected.items():
        assert kwargs[key] == value
    if "num_workers" not in fields:
        assert kwargs["num_workers"] == auto_num_workers()
    for key in ("pin_memory", "persistent_workers", "prefetch_factor"):
        assert (key in kwargs) == (key in fields)  # unset: rfdetr's machine-derived default applies
