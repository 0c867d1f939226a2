"""The seam into RFDETR.train(): Lightning's callbacks_factory entry point hands this run's callbacks to every
Trainer built inside it, and none outside (rfdetr's evaluate() afterwards, other users of the environment)."""

from __future__ import annotations

import sys

from support import REPO

from rfdetr_trainer.integrations.rfdetr import hooks


def test_pyproject_declares_the_entry_point():
    text = (REPO / "pyproject.toml").read_text()  # (tomllib is 3.11+; the project supports 3.10)
    section = text.split(f'[project.entry-points."{hooks.GROUP}"]\n', 1)[1].split("\n[", 1)[0]
    assert f'{hooks.NAME} = "{hooks.TARGET}"' in section.splitlines()


def test_trainers_get_the_callbacks_only_inside_a_run(tmp_path):
    from pytorch_lightning import Callback, Trainer

    class Marker(Callback):
        pass

    marker = Marker()
    kwargs = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, default_root_dir=str(tmp_path))
    with hooks.attached([marker]):
        inside = Trainer(**kwargs)
    outside = Trainer(**kwargs)
    assert hooks.registered()  # installed metadata, or the fallback ensure_registered() put on sys.path
    assert [cb for cb in inside.callbacks if cb is marker] == [marker]
    assert not any(isinstance(cb, Marker) for cb in outside.callbacks)


def test_entry_point_is_registered_once(monkeypatch):
    """With metadata present nothing is added; ensure_registered() twice never duplicates the factory."""
    import importlib.metadata

    hooks.ensure_registered()
    before = list(sys.path)
    hooks.ensure_registered()
    assert sys.path == before
    ours = [ep for ep in importlib.metadata.entry_points(group=hooks.GROUP) if ep.value == hooks.TARGET]
    assert len(ours) == 1
