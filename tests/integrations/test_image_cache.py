"""The image cache: what the model sees is the same with and without it, and later epochs read from it."""

from __future__ import annotations

import inspect
import logging
import pickle
from pathlib import Path

import pytest

from rfdetr_trainer.synthetic import make_photo_dataset

torch = pytest.importorskip("torch")
coco_mod = pytest.importorskip("rfdetr.datasets.coco")

from rfdetr_trainer.integrations.rfdetr import image_cache as ic  # noqa: E402


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 wide JPEGs (train 8, valid 2, test 2) whose shorter side is above the cached size of 224."""
    return make_photo_dataset(tmp_path_factory.mktemp("photos") / "ds", num_images=12, width=480, height=320,
                              grain=4, seed=5)


def dataset(root: Path, split: str, *, draft: int | None, image_set: str = "val", resolution: int = 160):
    """An rfdetr CocoDetection with rfdetr's deterministic (validation) transform pipeline."""
    transforms = coco_mod.make_coco_transforms_square_div_64(image_set, resolution)
    return coco_mod.CocoDetection(root / split, root / split / "_annotations.coco.json", transforms=transforms,
                                  remap_category_ids=True, draft_size=draft)


def samples(ds) -> list[tuple[torch.Tensor, dict]]:
    return [ds[i] for i in range(len(ds))]


def test_rfdetr_seams_the_cache_relies_on():
    """Pins the private names the cache uses, so an rfdetr upgrade that moves them fails here, not silently."""
    params = list(inspect.signature(coco_mod.CocoDetection._decode_image).parameters)
    assert params == ["self", "image_id"]
    source = inspect.getsource(coco_mod.CocoDetection.__getitem__)
    assert "self._decode_image(image_id)" in source and "scale_coco_annotation" in source
    assert "self._draft_size = draft_size" in inspect.getsource(coco_mod.CocoDetection.__init__)
    from rfdetr.training import RFDETRDataModule

    setup = inspect.getsource(RFDETRDataModule.setup)
    assert "self._dataset_train = build_dataset" in setup and "self._dataset_val = build_dataset" in setup


@pytest.mark.parametrize("mode", ["ram", "disk"])
def test_unresized_cache_gives_identical_tensors_and_targets(photos, tmp_path, mode):
    plain = samples(dataset(photos, "train", draft=None))
    cached_ds = dataset(photos, "train", draft=None)
    installed = ic.build([("valid", cached_ds)], mode=mode, max_bytes=10**9, cache_dir=tmp_path)
    assert installed and installed[0][1].mode == mode
    cached = samples(cached_ds)
    assert installed[0][1].hits == len(plain)
    for (img_a, tgt_a), (img_b, tgt_b) in zip(plain, cached):
        assert torch.equal(img_a, img_b)
        assert tgt_a.keys() == tgt_b.keys()
        for key in tgt_a:
            assert torch.equal(torch.as_tensor(tgt_a[key]), torch.as_tensor(tgt_b[key])), key
    ic.release(installed)
    assert not list(tmp_path.glob("*.u8"))


def test_resized_cache_keeps_boxes_and_pixels(photos, tmp_path):
    """Train split at a draft size below the image: boxes match to float precision, pixels to resampling error."""
    plain = samples(dataset(photos, "train", draft=224))
    cached_ds = dataset(photos, "train", draft=224)
    installed = ic.build([("train", cached_ds)], mode="ram", max_bytes=10**9, cache_dir=tmp_path)
    cache = installed[0][1]
    offset, height, width = next(iter(cache.slots.values()))
    assert (height, width) == (224, 336)  # 480x320 brought down to a shorter side of 224, aspect kept
    cached = samples(cached_ds)
    for (img_a, tgt_a), (img_b, tgt_b) in zip(plain, cached):
        assert img_a.shape == img_b.shape
        assert (img_a - img_b).abs().mean() < 0.05  # normalised units: ~1/100 of the value range
        assert torch.allclose(tgt_a["boxes"], tgt_b["boxes"], atol=1e-5)  # normalised cxcywh
        assert torch.equal(tgt_a["labels"], tgt_b["labels"])
        # the decoded size, as rfdetr's own draft decode reports it for the train split
        assert tuple(tgt_b["orig_size"].tolist()) == (224, 336)


def test_epochs_read_from_the_cache_not_the_files(photos, tmp_path):
    ds = dataset(photos, "train", draft=224, image_set="train")
    decodes = []
    original = ds._decode_image

    def counting(image_id):
        decodes.append(image_id)
        return original(image_id)

    ds._decode_image = counting
    installed = ic.build([("train", ds)], mode="ram", max_bytes=10**9, cache_dir=tmp_path)
    assert len(decodes) == len(ds)  # the fill: one decode per image
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, collate_fn=lambda b: b)
    for _epoch in range(3):
        seen = sum(len(batch) for batch in loader)
        assert seen == len(ds)
    assert len(decodes) == len(ds)  # epochs 1-3 decoded nothing
    assert installed[0][1].hits == 3 * len(ds) and installed[0][1].misses == 0


def test_over_budget_falls_back_to_disk_with_a_warning(photos, tmp_path, caplog):
    ds = dataset(photos, "train", draft=None)
    with caplog.at_level(logging.WARNING):
        installed = ic.build([("train", ds)], mode="ram", max_bytes=1000, cache_dir=tmp_path)
    assert installed[0][1].mode == "disk"
    assert "training.cache_max_gb" in caplog.text and "on disk" in caplog.text
    files = list(tmp_path.glob("*.u8"))
    assert len(files) == 1 and files[0].stat().st_size == installed[0][1].nbytes
    ds[0]
    assert installed[0][1].hits == 1
    ic.release(installed)
    assert not files[0].exists()


@pytest.mark.parametrize("mode", ["ram", "disk"])
def test_cached_dataset_survives_pickling_for_spawned_workers(photos, tmp_path, mode):
    ds = dataset(photos, "train", draft=None)
    expected = ds[1][0]
    ic.build([("train", ds)], mode=mode, max_bytes=10**9, cache_dir=tmp_path)
    copy = pickle.loads(pickle.dumps(ds))
    assert torch.equal(copy[1][0], expected)
    assert copy._decode_image.cache.hits == 1


def test_cached_shape_never_upscales():
    assert ic.cached_shape(720, 1280, 600) == (600, 1067)
    assert ic.cached_shape(300, 400, 600) == (300, 400)
    assert ic.cached_shape(720, 1280, None) == (720, 1280)
