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
    config_class = getattr(rfdetr.config, spec.config_name)
    config = config_class()
    assert (config.patch_size, config.num_windows, config.resolution) == (
        spec.patch_size, spec.num_windows, spec.default_resolution)
    # The package names rfdetr's public config classes; pin them to the private class attributes rfdetr itself
    # builds from (RFDETRLarge overrides get_model_config instead), so a renamed class fails here, not in a run.
    cls = getattr(rfdetr, spec.class_name)
    if spec.class_name != "RFDETRLarge":
        assert cls._model_config_class is config_class
    assert cls._train_config_class is getattr(rfdetr.config, spec.train_config_name)


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
