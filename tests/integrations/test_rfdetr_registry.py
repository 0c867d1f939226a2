"""The static model table agrees with rfdetr's own config classes; weights resolve offline-safely."""

from __future__ import annotations

import pytest

from rfdetr_trainer.errors import CheckpointError, ConfigError
from rfdetr_trainer.integrations.rfdetr.registry import MODELS, check_resolution, get_spec, resolve_weights
from rfdetr_trainer.schemas.model import MODEL_TYPES


def test_every_model_type_has_a_spec():
    assert tuple(MODELS) == MODEL_TYPES


@pytest.mark.parametrize("name", MODEL_TYPES)
def test_spec_matches_rfdetr_config(name):
    import rfdetr
    import rfdetr.config

    spec = MODELS[name]
    # RFDETRLarge builds its config in get_model_config(); the others name a config class.
    config_class = getattr(rfdetr.config, f"{spec.class_name}Config", None) or getattr(
        rfdetr, spec.class_name)._model_config_class
    config = config_class()
    assert (config.patch_size, config.num_windows, config.resolution) == (
        spec.patch_size, spec.num_windows, spec.default_resolution)


@pytest.mark.parametrize(("name", "resolution", "ok"), [
    ("nano", 224, True), ("nano", 230, False), ("base", 560, True), ("base", 640, False),
    ("seg-nano", 300, True), ("seg-small", 300, False), ("large", None, True),
])
def test_resolution_rule(name, resolution, ok):
    spec = get_spec(name)
    if ok:
        assert check_resolution(spec, resolution) == (resolution or spec.default_resolution)
    else:
        with pytest.raises(ConfigError, match=f"not divisible by {spec.block_size}"):
            check_resolution(spec, resolution)


def test_weights_choices(tmp_path, monkeypatch):
    spec = get_spec("nano")
    assert resolve_weights(spec, None) is None
    local = tmp_path / "w.pth"
    local.write_bytes(b"x")
    assert resolve_weights(spec, str(local)) == str(local)
    with pytest.raises(CheckpointError):
        resolve_weights(spec, str(tmp_path / "missing.pth"))
    monkeypatch.setenv("RF_HOME", str(tmp_path))
    (tmp_path / "rf-detr-nano.pth").write_bytes(b"x")
    assert resolve_weights(spec, "default") == str(tmp_path / "rf-detr-nano.pth")
