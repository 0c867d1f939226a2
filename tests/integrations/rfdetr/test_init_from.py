"""--init-from PREV.pth: PREV's weights, its class-head rows mapped onto the new dataset's classes by name.

PREV is a real (one-step) training on square/circle/triangle; the new dataset is triangle/star/square: two classes
shared in a different order, one new, one gone.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from rfdetr_trainer.pipeline.context import RunPaths
from rfdetr_trainer.schemas import ModelConfig, TrainingConfig

pytestmark = pytest.mark.slow

OLD = ("square", "circle", "triangle")
NEW = ("triangle", "star", "square")
TINY = dict(epochs=1, batch_size=2, grad_accum_steps=1, resolution=64, device="cpu", num_workers=0,
            max_steps=1, checkpoint_interval=100)  # one step; the EMA callback still writes checkpoint_best_ema.pth


def _head_keys(state: dict) -> list[str]:
    from rfdetr_trainer.integrations.rfdetr.init_from import CLASS_HEAD

    return [k for k in state if CLASS_HEAD.search(k)]


@pytest.fixture(scope="module")
def prev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    from rfdetr_trainer.integrations.rfdetr.init_from import load_previous
    from rfdetr_trainer.services.train import train
    from rfdetr_trainer.synthetic import make_dataset

    root = tmp_path_factory.mktemp("init-from")
    old = make_dataset(root / "old", num_images=8, image_size=64, classes=OLD)
    new = make_dataset(root / "new", num_images=8, image_size=64, classes=NEW, seed=3)
    result = train(ModelConfig(pretrain_weights=None), TrainingConfig(**TINY), old, RunPaths(root / "prev"),
                   tensorboard=False, show_progress=False, validate=False)
    state, names = load_previous(result.best_checkpoint)
    yield SimpleNamespace(root=root, new=new, checkpoint=result.best_checkpoint, state=state, names=names)
    shutil.rmtree(root, ignore_errors=True)  # checkpoints are large


def _assert_mapped(prev: SimpleNamespace, state: dict) -> None:
    import torch

    keys = _head_keys(state)
    assert "class_embed.weight" in keys and "class_embed.bias" in keys
    assert any(k.startswith("transformer.enc_out_class_embed.") for k in keys)  # the two-stage heads too
    for key in keys:
        old, new = prev.state[key], state[key]
        assert new.shape[0] == len(NEW) + 1
        for name in ("triangle", "square"):  # shared: PREV's row, found by name
            assert torch.equal(new[NEW.index(name)], old[OLD.index(name)]), (key, name)
        star = new[NEW.index("star")]
        assert not any(torch.equal(star, old[i]) for i in range(old.shape[0])), key  # new: rfdetr's own init
    body = "transformer.decoder.layers.0.linear1.weight"
    assert torch.equal(state[body], prev.state[body])  # the rest starts from PREV too


def test_prev_checkpoint_records_its_class_names(prev):
    assert prev.names == list(OLD)


def test_built_model_maps_class_head_by_name(prev, tmp_path):
    from rfdetr_trainer.integrations.rfdetr.registry import get_spec
    from rfdetr_trainer.services.train import _model_from_previous

    training = TrainingConfig(**TINY)
    model, mapping = _model_from_previous(get_spec("nano"), ModelConfig(pretrain_weights=None,
                                                                        init_from=prev.checkpoint),
                                          training, prev.new, RunPaths(tmp_path / "run"), None, 64)
    _assert_mapped(prev, model.model.model.state_dict())
    assert mapping.to_dict()["kept"] == {"triangle": [2, 0], "square": [0, 2]}
    assert (mapping.new, mapping.removed) == (["star"], ["circle"])


def test_rfdetr_training_starts_from_mapped_head(prev, tmp_path):
    """Inside RFDETR.train(): the module rfdetr built holds the mapped rows when the first step starts."""
    import logging

    from pytorch_lightning import Callback

    from rfdetr_trainer.services.train import train

    class FirstStep(Callback):
        state: dict = {}

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if not self.state:
                self.state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}

    class Lines(logging.Handler):
        messages: list = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    probe, lines = FirstStep(), Lines()
    logger = logging.getLogger("rfdetr_trainer")  # the project's logger does not propagate to the root
    logger.addHandler(lines)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        result = train(ModelConfig(pretrain_weights=None, init_from=prev.checkpoint), TrainingConfig(**TINY),
                       prev.new, RunPaths(tmp_path / "run"), tensorboard=False, show_progress=False,
                       validate=False, extra_callbacks=[probe])
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    _assert_mapped(prev, probe.state)
    assert result.class_names == list(NEW)
    recorded = result.to_dict()["init_from"]  # what the run manifest records under stages.train
    assert recorded["kept"] == {"triangle": [2, 0], "square": [0, 2]}
    assert recorded["new"] == ["star"] and recorded["removed"] == ["circle"]
    assert any("2 classes kept (triangle, square), 1 new (star), 1 removed (circle)" in m for m in lines.messages)


def test_init_from_rejects_a_checkpoint_without_class_names(prev, tmp_path):
    import torch

    from rfdetr_trainer.errors import CheckpointError
    from rfdetr_trainer.integrations.rfdetr.init_from import load_previous

    bare = tmp_path / "bare.pth"
    torch.save({"model": prev.state}, str(bare))
    with pytest.raises(CheckpointError, match="records no class names"):
        load_previous(bare)
