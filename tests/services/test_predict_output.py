"""predict never overwrites a folder that is not an earlier predictions folder."""

from __future__ import annotations

import pytest

from rfdetr_trainer.errors import DatasetError, OutputError
from rfdetr_trainer.schemas import ValidationConfig
from rfdetr_trainer.services.predict import predict, resolve_inputs


def test_foreign_folder_is_refused(tiny_dataset, tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not an earlier predictions folder"):
        predict(None, tiny_dataset / "test", precious, ValidationConfig())
    assert (precious / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("kind", ["split", "root", "folder", "file"])
def test_inputs_resolve(tiny_dataset, kind):
    if kind == "split":
        inputs = resolve_inputs(tiny_dataset / "test")
        assert inputs.ground_truth is not None and len(inputs.images) == len(inputs.image_ids) > 0
    elif kind == "root":
        assert resolve_inputs(tiny_dataset, "valid").ground_truth == tiny_dataset / "valid" / "_annotations.coco.json"
    elif kind == "folder":
        inputs = resolve_inputs(tiny_dataset)  # no annotations at the root: every image below it
        assert inputs.ground_truth is None and len(inputs.images) == 16
    else:
        image = sorted((tiny_dataset / "train").glob("*.jpg"))[0]
        assert resolve_inputs(image).images == [image]


def test_empty_folder_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="no images found"):
        resolve_inputs(tmp_path)
