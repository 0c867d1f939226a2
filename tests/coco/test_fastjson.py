"""The msgspec fast path writes exactly the bytes the stdlib path writes, and steps aside when it must."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from support.coco_fixtures import (
    POLYGON,
    RLE_COMPRESSED,
    RLE_UNCOMPRESSED,
    Img,
    ann,
    three_images,
    tree_digest,
    write_dataset,
)

from rfdetr_trainer.coco import fastjson
from rfdetr_trainer.coco.merge import MergeOptions, merge_datasets
from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.errors import DatasetError

pytestmark = pytest.mark.skipif(fastjson.msgspec is None, reason="msgspec not installed")

EXTRAS = [
    {"segmentation": POLYGON, "area": 64.25, "attributes": {"occluded": False, "rotation": 12.5, "color": "rød"}},
    {"segmentation": RLE_UNCOMPRESSED, "iscrowd": 1, "attributes": {"occluded": True, "note": "日本語 ✓ \"q\""}},
    {"segmentation": RLE_COMPRESSED, "iscrowd": 1, "score": 0.75, "custom": {"nested": [1, "ü", None, 1e-7]}},
    {"track_id": 4, "attributes": {"id": "looks-like-an-id-key", "keyframe": True}},
    {"segmentation": [[0.1, 0.2, 3.000001, 4.5e3, 1.0, 2.0]], "big": 123456789012345678901234567890},
]


def _sources(tmp_path: Path) -> list[SourceRef]:
    """Sources covering both paths' branches: unicode, polygons, RLE, attributes, clipped and invalid boxes,
    dangling references, repeated ids, byte-identical images, several layouts."""
    imgs = [Img(f"ü{i}.png", [ann("car", **e), ann("Straße", [1.5, 2.25, 4.0, 3.0], **e)], color=(i, 0, 9),
                extra={"date_captured": 0, "flickr_url": "ü"}) for i, e in enumerate(EXTRAS)]
    imgs.append(Img("clip.png", [ann("car", [15, 2, 10, 5]), ann("car", [1, 1, 0, 3]), ann("car", [1, 1, "x", 3])],
                    color=(50, 1, 1)))
    a = write_dataset(tmp_path / "a", {"train": imgs + three_images("a"), "valid": three_images("v", "Straße", 20),
                                       "test": three_images("t", "car", 40)})
    compact = a / "train" / "_annotations.coco.json"  # CVAT's shape: compact, non-ASCII as UTF-8
    compact.write_text(json.dumps(json.loads(compact.read_text()), ensure_ascii=False, separators=(",", ":")),
                       encoding="utf-8")
    b = write_dataset(tmp_path / "b", {"default": three_images("a") + three_images("b", "dog", 60)}, "cvat")
    path = b / "annotations" / "instances_default.json"
    data = json.loads(path.read_text())
    first = data["annotations"][0]
    data["annotations"] += [{**first, "id": 50, "image_id": 77}, {**first, "id": 51, "category_id": 77},
                            {**first, "id": 1}, {**first, "id": 52, "bbox": [1, 1, 2]}, {**first, "id": 53}]
    path.write_text(json.dumps(data, ensure_ascii=False))
    return [SourceRef(a, "a"), SourceRef(b, "b")]


def _merge(sources: list[SourceRef], out: Path, fast: bool, monkeypatch, **options) -> dict[str, bytes]:
    monkeypatch.setattr(fastjson, "enabled", fast)
    result = merge_datasets(sources, out, MergeOptions(**options))
    digest = tree_digest(out)
    digest["findings"] = repr(result.findings).encode()
    return digest


def _same_both_ways(tmp_path: Path, sources: list[SourceRef], monkeypatch, **options) -> dict[str, bytes]:
    slow = _merge(sources, tmp_path / "slow", False, monkeypatch, **options)
    fast = _merge(sources, tmp_path / "fast", True, monkeypatch, **options)
    assert fast.keys() == slow.keys()
    for name in slow:
        assert fast[name] == slow[name], name
    return fast


@pytest.mark.parametrize("options", [{}, {"copy_images": False, "split_mode": "ratio"}, {"box_fix": "drop"}])
def test_fast_path_output_is_byte_identical(tmp_path, monkeypatch, options):
    out = _same_both_ways(tmp_path, _sources(tmp_path), monkeypatch, **options)
    text = out["train/_annotations.coco.json"].decode()
    assert "日本語 ✓" in text and '"counts":"PPZ10O10000O1O1O1"' in text and '"rotation":12.5' in text


def _rewrite(path: Path, transform) -> None:
    path.write_bytes(transform(path.read_bytes()))


# Files the fast path hands to the stdlib path (or reads differently-laid-out text); results must not change.
VARIANTS = {
    "pretty": lambda b: json.dumps(json.loads(b), indent=2, ensure_ascii=False).encode(),
    "bom": lambda b: b"\xef\xbb\xbf" + b,
    "ascii_escapes": lambda b: json.dumps(json.loads(b)).encode(),
    "annotations_first": lambda b: json.dumps(
        {k: v for k, v in reversed(list(json.loads(b).items()))}, separators=(",", ":")).encode(),
    "reversed_keys": lambda b: json.dumps(
        {**json.loads(b), "annotations": [dict(reversed(list(a.items()))) for a in json.loads(b)["annotations"]]}
    ).encode(),
    "nan": lambda b: b.replace(b'"area":1.0', b'"area":NaN', 1),
    "huge_float": lambda b: b.replace(b'"area":1.0', b'"area":1e400', 1),
    "huge_box": lambda b: b.replace(b'"bbox":[2.0', b'"bbox":[1e400', 1),
    "lone_surrogate": lambda b: b.replace(b'"description":""', b'"description":"\\ud800"', 1),
    "repeated_key": lambda b: b[:-1] + b', "images": []}',
    "repeated_ann_key": lambda b: b.replace(b'"image_id":1,', b'"image_id":2,"image_id":1,', 1),
    "not_an_object": lambda b: b.replace(b'"annotations":[', b'"annotations":[7,', 1),
    "whitespace_tail": lambda b: b + b" \n\t",
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_are_byte_identical(tmp_path, monkeypatch, variant):
    sources = _sources(tmp_path)
    _rewrite(sources[0].path / "train" / "_annotations.coco.json", VARIANTS[variant])
    _same_both_ways(tmp_path, sources, monkeypatch)


@pytest.mark.parametrize(
    "damage",
    [lambda b: b[:-3], lambda b: b.replace(b"[", b"[,", 1), lambda b: b.replace(b'"x"', b'"\xff"', 1),
     lambda b: b"[" * 5000 + b"]" * 5000, lambda b: b.replace(b'"ann', b'"a\x01nn', 1), lambda b: b"[]"],
    ids=["truncated", "comma", "not-utf8", "deep", "control-char", "not-object"],
)
def test_errors_are_the_stdlib_paths_errors(tmp_path, monkeypatch, damage):
    sources = _sources(tmp_path)
    _rewrite(sources[0].path / "train" / "_annotations.coco.json", damage)
    messages = []
    for fast in (False, True):
        monkeypatch.setattr(fastjson, "enabled", fast)
        with pytest.raises(DatasetError) as info:
            merge_datasets(sources, tmp_path / f"out{fast}", MergeOptions())
        messages.append(str(info.value))
        assert not (tmp_path / f"out{fast}").exists()
    assert messages[0] == messages[1]


def test_random_sources_are_byte_identical(tmp_path, monkeypatch):
    rnd = random.Random(7)
    sources = []
    for s in range(3):
        imgs = []
        for i in range(400):
            if s == 1:  # boxes anywhere: clipped and dropped ones make the whole file take the careful loop
                box = lambda: [round(rnd.uniform(-1, 18), 3), round(rnd.uniform(-1, 14), 3),  # noqa: E731
                               round(rnd.uniform(0, 9), 3), round(rnd.uniform(0, 9), 3)]
            else:
                box = lambda: [round(rnd.uniform(0, 10), 3), rnd.randint(0, 6), round(rnd.uniform(0.5, 9), 3),  # noqa: E731
                               round(rnd.uniform(0.5, 9), 3)]
            anns = [ann(rnd.choice(["car", "dog", "ß"]), box(), segmentation=[[rnd.random() for _ in range(6)]],
                        attributes={"track_id": 3} if rnd.random() < 0.01 else {})
                    for _ in range(rnd.randint(0, 4))]
            imgs.append(Img(f"f{i}.png", anns, color=(s, i % 200, i // 200)))
        root = write_dataset(tmp_path / f"s{s}", {"default": imgs}, "cvat")
        if s != 1:  # compact, as CVAT writes it: the chunked writer's path, spread over three splits
            path = root / "annotations" / "instances_default.json"
            path.write_text(json.dumps(json.loads(path.read_text()), separators=(",", ":"), ensure_ascii=s == 0))
        sources.append(SourceRef(root, f"s{s}"))
    _same_both_ways(tmp_path, sources, monkeypatch, split_mode="ratio")


def test_variants_really_change_the_file(tmp_path):
    sources = _sources(tmp_path)
    original = (sources[0].path / "train" / "_annotations.coco.json").read_bytes()
    for name, transform in VARIANTS.items():
        assert transform(original) != original, name
    parsed = fastjson.parse(original)
    assert parsed is not None and fastjson.fields(parsed.annotations) is not None
    for name in ("pretty", "bom", "ascii_escapes", "annotations_first", "reversed_keys", "whitespace_tail",
                 "repeated_ann_key", "not_an_object", "huge_float"):
        assert fastjson.parse(VARIANTS[name](original)) is not None, name  # read fast, other branches
    for name in ("huge_box", "not_an_object"):  # read fast, but every annotation through stdlib dicts
        assert fastjson.fields(fastjson.parse(VARIANTS[name](original)).annotations) is None, name
    for name in ("nan", "lone_surrogate", "repeated_key"):
        assert fastjson.parse(VARIANTS[name](original)) is None, name  # handed to the stdlib path
