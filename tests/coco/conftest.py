"""Fixtures of the dataset engine tests; the builders live in support/coco_fixtures.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.coco_fixtures import Img, ann, write_dataset


@pytest.fixture
def simple_rfdetr(tmp_path: Path) -> Path:
    """A clean rfdetr-layout dataset: train (3 images), valid (1), test (1), classes car and person."""
    return write_dataset(
        tmp_path / "ds",
        {
            "train": [
                Img("a.png", [ann("car"), ann("person")], color=(1, 0, 0)),
                Img("b.png", [ann("car")], color=(2, 0, 0)),
                Img("c.png", [ann("person")], color=(3, 0, 0)),
            ],
            "valid": [Img("d.png", [ann("car")], color=(4, 0, 0))],
            "test": [Img("e.png", [ann("person")], color=(5, 0, 0))],
        },
    )
