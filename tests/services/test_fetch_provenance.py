"""What the fetch stage hands training for the checkpoint notes."""

from __future__ import annotations

import json

from rfdetr_trainer.schemas import DataConfig
from rfdetr_trainer.services.fetch import fetch
from rfdetr_trainer.synthetic import make_dataset


def test_merged_sources_provenance_carries_the_manifest(tmp_path):
    a = make_dataset(tmp_path / "a", num_images=8, image_size=64, seed=1, layout="cvat")
    b = make_dataset(tmp_path / "b", num_images=8, image_size=64, seed=2)
    data = DataConfig.model_validate({"local": {"dataset_dirs": [str(a), str(b)]}, "output_dir": str(tmp_path / "m")})
    result = fetch(data)
    assert not result.in_place and result.dataset_dir == (tmp_path / "m").absolute()
    notes = result.provenance()
    json.dumps(notes)  # stored in checkpoints: must be JSON
    manifest = notes["dataset_manifest"]
    assert [s["name"] for s in manifest["sources"]] == ["a", "b"]
    assert manifest["counts"]["images"] == 16
    assert set(manifest["findings"]) == {"counts"}  # per-item findings stay in the manifest file
    assert [o["type"] for o in notes["sources"]] == ["local", "local"]


def test_in_place_dataset_provenance(tiny_dataset):
    result = fetch(DataConfig.model_validate({"local": {"dataset_dirs": [str(tiny_dataset)]}}))
    assert result.in_place and result.dataset_dir == tiny_dataset
    assert result.provenance()["dataset_manifest"]["path"] is None
