"""The image cache: what the model sees is the same with and without it, and later epochs read from it."""

from __future__ import annotations

import inspect
import logging
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


@pytest.fixture(autouse=True)
def restored_decoder():
    """Every test leaves rfdetr's own decoder in place, whatever it installed."""
    original = ic.rfdetr_decoder()
    yield
    ic.uninstall()
    assert coco_mod.decode_pil_image is original


def dataset(root: Path, split: str, *, draft: int | None, image_set: str = "val", resolution: int = 160):
    """An rfdetr CocoDetection with rfdetr's deterministic (validation) transform pipeline."""
    transforms = coco_mod.make_coco_transforms_square_div_64(image_set, resolution)
    return coco_mod.CocoDetection(root / split, root / split / "_annotations.coco.json", transforms=transforms,
                                  remap_category_ids=True, draft_size=draft)


def samples(ds) -> list[tuple[torch.Tensor, dict]]:
    return [ds[i] for i in range(len(ds))]


def split(root: Path, name: str, draft: int | None) -> ic.Split:
    return ic.Split(name, ic.split_images(root / name), draft)


def test_rfdetr_seam_the_cache_relies_on(photos):
    """CocoDetection decodes through the module-level decode_pil_image(path, draft_size), looked up per call, and
    scales the annotations by the scales it returns; an rfdetr upgrade that changes this fails here."""
    assert list(inspect.signature(coco_mod.decode_pil_image).parameters) == ["path", "draft_size"]
    ds = dataset(photos, "train", draft=224)
    assert ic.probe_draft_size(ds) == (True, 224)  # the argument rfdetr passes, seen through the public name
    assert ic.probe_draft_size(dataset(photos, "valid", draft=None)) == (True, None)


@pytest.mark.parametrize("mode", ["ram", "disk"])
def test_unresized_cache_gives_identical_tensors_and_targets(photos, tmp_path, mode):
    plain = samples(dataset(photos, "valid", draft=None))
    installed = ic.build([split(photos, "valid", None)], mode=mode, max_bytes=10**9, cache_dir=tmp_path)
    assert installed and installed[0].mode == mode
    cached = samples(dataset(photos, "valid", draft=None))
    assert installed[0].hits == len(plain)
    for (img_a, tgt_a), (img_b, tgt_b) in zip(plain, cached):
        assert torch.equal(img_a, img_b)
        assert tgt_a.keys() == tgt_b.keys()
        for key in tgt_a:
            assert torch.equal(torch.as_tensor(tgt_a[key]), torch.as_tensor(tgt_b[key])), key
    ic.release(installed)
    assert not list(tmp_path.glob("*.u8"))
    assert not isinstance(coco_mod.decode_pil_image, ic.CachedDecode)


def test_resized_cache_keeps_boxes_and_pixels(photos, tmp_path):
    """Train split at a draft size below the image: boxes match to float precision, pixels to resampling error."""
    plain = samples(dataset(photos, "train", draft=224))
    installed = ic.build([split(photos, "train", 224)], mode="ram", max_bytes=10**9, cache_dir=tmp_path)
    cache = installed[0]
    offset, height, width = next(iter(cache.slots.values()))
    assert (height, width) == (224, 336)  # 480x320 brought down to a shorter side of 224, aspect kept
    cached = samples(dataset(photos, "train", draft=224))
    assert cache.hits == len(plain)
    for (img_a, tgt_a), (img_b, tgt_b) in zip(plain, cached):
        assert img_a.shape == img_b.shape
        assert (img_a - img_b).abs().mean() < 0.05  # normalised units: ~1/100 of the value range
        assert torch.allclose(tgt_a["boxes"], tgt_b["boxes"], atol=1e-5)  # normalised cxcywh
        assert torch.equal(tgt_a["labels"], tgt_b["labels"])
        # the decoded size, as rfdetr's own draft decode reports it for the train split
        assert tuple(tgt_b["orig_size"].tolist()) == (224, 336)


def test_a_different_draft_size_is_not_served_from_the_cache(photos, tmp_path):
    installed = ic.build([split(photos, "train", 224)], mode="ram", max_bytes=10**9, cache_dir=tmp_path)
    samples(dataset(photos, "train", draft=None))  # same files, full-size decode: rfdetr decodes them
    assert installed[0].hits == 0


def test_epochs_read_from_the_cache_not_the_files(photos, tmp_path):
    decodes = []
    original = coco_mod.decode_pil_image

    def counting(path, draft_size=None):
        decodes.append(path)
        return original(path, draft_size)

    ds = dataset(photos, "train", draft=224, image_set="train")
    installed = ic.build([split(photos, "train", 224)], mode="ram", max_bytes=10**9, cache_dir=tmp_path)
    decoder = coco_mod.decode_pil_image
    assert isinstance(decoder, ic.CachedDecode)
    decoder.original = counting  # a file the cache misses would be counted here
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, collate_fn=lambda b: b)
    for _epoch in range(3):
        seen = sum(len(batch) for batch in loader)
        assert seen == len(ds)
    assert decodes == []  # epochs 1-3 decoded nothing
    assert installed[0].hits == 3 * len(ds) and installed[0].misses == 0
    decoder.original = original


def test_over_budget_falls_back_to_disk_with_a_warning(photos, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        installed = ic.build([split(photos, "train", None)], mode="ram", max_bytes=1000, cache_dir=tmp_path)
    assert installed[0].mode == "disk"
    assert "training.cache_max_gb" in caplog.text and "on disk" in caplog.text
    files = list(tmp_path.glob("*.u8"))
    assert len(files) == 1 and files[0].stat().st_size == installed[0].nbytes
    dataset(photos, "train", draft=None)[0]
    assert installed[0].hits == 1
    ic.release(installed)
    assert not files[0].exists()


def test_cached_shape_never_upscales():
    assert ic.cached_shape(720, 1280, 600) == (600, 1067)
    assert ic.cached_shape(300, 400, 600) == (300, 400)
    assert ic.cached_shape(720, 1280, None) == (720, 1280)
