"""merge: categories by name, class maps, renumbering, collisions, duplicates, links, atomicity, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pytest
from support.coco_fixtures import (
    POLYGON,
    RLE_COMPRESSED,
    RLE_UNCOMPRESSED,
    Img,
    ann,
    class_counts,
    load_split,
    three_images,
    tree_digest,
    write_dataset,
)

from rfdetr_trainer.coco.classmap import ClassMap, class_map_from_flags
from rfdetr_trainer.coco.layout import Tree
from rfdetr_trainer.coco.merge import MergeOptions, merge_datasets
from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.errors import ConfigError, DatasetError, OutputError
from rfdetr_trainer.schemas.data import DataConfig
from rfdetr_trainer.services.inspect import inspect_dataset
from rfdetr_trainer.services.merge import merge


def _src(tmp_path: Path, name: str, subsets: dict, layout: str = "rfdetr", **kw) -> SourceRef:
    return SourceRef(write_dataset(tmp_path / name, subsets, layout, **kw), name, {"type": "local", "path": name})


def _all(root: Path) -> list[dict]:
    return [a for s in ("train", "valid", "test") for a in load_split(root, s)["annotations"]]


def test_categories_united_by_name_with_contiguous_ids(tmp_path):
    a = _src(tmp_path, "a", {"train": three_images("a", "car") + [Img("a9.png", [ann("dog")], color=(9, 9, 1))]})
    b = _src(tmp_path, "b", {"train": three_images("b", "dog", 50) + [Img("b9.png", [ann("cat")], color=(9, 9, 2))]})
    result = merge_datasets([a, b], tmp_path / "out", MergeOptions())
    for split in ("train", "valid", "test"):
        cats = load_split(tmp_path / "out", split)["categories"]
        assert [(c["id"], c["name"]) for c in cats] == [(1, "car"), (2, "dog"), (3, "cat")]
    assert class_counts(tmp_path / "out") == {"car": 3, "dog": 4, "cat": 1}
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["sources"][1]["class_map"] == [
        {"old_id": 1, "old_name": "dog", "new_id": 2, "new_name": "dog"},
        {"old_id": 2, "old_name": "cat", "new_id": 3, "new_name": "cat"},
    ]


def test_class_map_renames_merges_and_drops(tmp_path):
    imgs = [Img(f"i{i}.png", [ann("car"), ann("automobile"), ann("tree")], color=(i, 3, 3)) for i in range(4)]
    src = _src(tmp_path, "a", {"default": imgs})
    cmap = tmp_path / "map.yaml"
    cmap.write_text("rename:\n  automobile: vehicle\n  car: vehicle\ndrop: [tree]\n")
    data = DataConfig(class_map=cmap)
    result = merge([src], tmp_path / "out", data, class_map=class_map_from_flags(["typo=x"], []))
    assert class_counts(tmp_path / "out") == {"vehicle": 8}
    assert result.dropped == {"class_map_drop": 4}
    assert [f.code for f in result.findings if f.code == "class_map_unused"] == ["class_map_unused"]
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["class_map"] == {"rename": {"automobile": "vehicle", "car": "vehicle", "typo": "x"},
                                     "drop": ["tree"]}
    assert manifest["categories"] == [{"id": 1, "name": "vehicle"}]


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        ('{"car": "vehicle", "tree": null}', ".json", ClassMap({"car": "vehicle"}, frozenset({"tree"}))),
        ("car: vehicle\ntree: ''\n", ".yml", ClassMap({"car": "vehicle"}, frozenset({"tree"}))),
        ('{"rename": {"a": "b"}}', ".json", ClassMap({"a": "b"}, frozenset())),
    ],
)
def test_class_map_file_shapes(tmp_path, text, suffix, expected):
    from rfdetr_trainer.coco.classmap import load_class_map

    path = tmp_path / f"m{suffix}"
    path.write_text(text)
    assert load_class_map(path) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("[1]", "is a mapping"), ('{"rename": [1]}', "'rename' must map"), ("{bad json", "not valid JSON"),
     ('{"a": 5}', "non-empty name")],
)
def test_bad_class_map_is_a_config_error(tmp_path, text, message):
    from rfdetr_trainer.coco.classmap import load_class_map

    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_class_map(path)
    with pytest.raises(ConfigError, match="OLD=NEW"):
        class_map_from_flags(["nothing"])


def test_ids_renumbered_and_file_name_collisions_resolved(tmp_path):
    # Two sources with the same six names, all in train: at least three names must collide (pigeonhole).
    names6 = ["frame.png", "FRAME_1.png", "b.png", "c.png", "d.png", "e.png"]
    a = _src(tmp_path, "a", {"train": [Img(n, [ann("car")], color=(i, 1, 1)) for i, n in enumerate(names6)]})
    b = _src(tmp_path, "b", {"train": [Img(n, [ann("car")], color=(i, 2, 2)) for i, n in enumerate(names6)]})
    out = tmp_path / "out"
    result = merge_datasets([a, b], out, MergeOptions())
    from PIL import Image

    colours = set()
    for split in ("train", "valid", "test"):
        data = load_split(out, split)
        assert [i["id"] for i in data["images"]] == list(range(1, len(data["images"]) + 1))
        assert [x["id"] for x in data["annotations"]] == list(range(1, len(data["annotations"]) + 1))
        assert {x["image_id"] for x in data["annotations"]} == {i["id"] for i in data["images"]}
        names = [i["file_name"].casefold() for i in data["images"]]
        assert len(names) == len(set(names))
        for img in data["images"]:
            colours.add(Image.open(out / split / img["file_name"]).getpixel((0, 0)))
    assert len(colours) == 12  # no image overwrote another
    renamed = [f for f in result.findings if f.code == "file_renamed"]
    assert len(renamed) == 1 and json.loads(result.manifest_path.read_text())["renamed_files"] >= 3


def test_every_stored_image_records_its_source_file_name_and_id(tmp_path):
    # CVAT video tasks all name their frames frame_000000.jpg...: the renamed copy must still lead back to its
    # source and original image id (evaluate's error gallery names the task and frame from it).
    def task(color: int) -> dict:
        frames = [Img(f"frame_{n:06d}.png", [ann("car")], color=(color, n, 0)) for n in range(4)]
        return {"train": frames[:2], "valid": frames[2:3], "test": frames[3:]}

    a = _src(tmp_path, "a", task(1))
    b_subsets = task(2)
    b_subsets["train"].append(Img("copy.png", [ann("car")], color=(1, 0, 0)))  # same bytes as a's frame 0
    b = _src(tmp_path, "b", b_subsets)
    result = merge_datasets([a, b], tmp_path / "out", MergeOptions())
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["image_origins"] == {"path": "image_origins.json",
                                         "columns": ["file", "source", "file_name", "image_id"], "images": 8}
    origins = json.loads((tmp_path / "out" / "image_origins.json").read_text())
    assert origins["sources"] == ["a", "b"]  # the manifest's sources, in order
    assert origins["rows"] == [
        ["train/frame_000000.png", 0, "frame_000000.png", 1], ["train/frame_000001.png", 0, "frame_000001.png", 2],
        ["train/frame_000000_1.png", 1, "frame_000000.png", 1], ["train/frame_000001_1.png", 1, "frame_000001.png", 2],
        ["valid/frame_000002.png", 0, "frame_000002.png", 1], ["valid/frame_000002_1.png", 1, "frame_000002.png", 1],
        ["test/frame_000003.png", 0, "frame_000003.png", 1], ["test/frame_000003_1.png", 1, "frame_000003.png", 1],
    ]  # copy.png is stored once, as a's frame 0
    for split in ("train", "valid", "test"):  # rows follow each split's output ids
        names = [f"{split}/{i['file_name']}" for i in load_split(tmp_path / "out", split)["images"]]
        assert names == [r[0] for r in origins["rows"] if r[0].startswith(f"{split}/")]


def test_byte_identical_images_stored_once_and_annotations_unioned(tmp_path):
    shared = dict(color=(7, 7, 7))
    a = _src(tmp_path, "a", {"train": three_images("a") + [Img("same.png", [ann("car", [1, 1, 4, 4])], **shared)]})
    b = _src(tmp_path, "b", {"train": three_images("b", color_base=40) + [
        Img("copy.png", [ann("car", [1, 1, 4, 4]), ann("dog", [5, 5, 3, 3])], **shared)]})
    result = merge_datasets([a, b], tmp_path / "out", MergeOptions())
    assert result.counts["images"] == 7
    assert result.dropped == {"duplicate_annotation": 1}
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["duplicates"]["images"] == 1 and manifest["duplicates"]["annotations_dropped"] == 1
    assert "first source" in manifest["duplicates"]["rule"]
    codes = [f.code for f in result.findings]
    assert codes.count("duplicate_image") == 1 and codes.count("duplicate_annotation") == 1
    # The stored copy carries the car once and the dog from the other copy.
    for split in ("train", "valid", "test"):
        data = load_split(tmp_path / "out", split)
        for img in data["images"]:
            if img["file_name"] == "same.png":
                anns = [x for x in data["annotations"] if x["image_id"] == img["id"]]
                assert sorted(x["category_id"] for x in anns) == [1, 2]
    assert not any(img["file_name"] == "copy.png" for s in ("train", "valid", "test")
                   for img in load_split(tmp_path / "out", s)["images"])


def test_extra_fields_survive_untouched(tmp_path):
    extras = [
        {"segmentation": POLYGON, "attributes": {"occluded": False, "rotation": 12.5, "color": "red"}},
        {"segmentation": RLE_UNCOMPRESSED, "iscrowd": 1, "attributes": {"occluded": True}},
        {"segmentation": RLE_COMPRESSED, "iscrowd": 1, "score": 0.75, "custom": {"nested": [1, "ü"]}},
        {"track_id": 4, "attributes": {"id": "looks-like-an-id-key", "keyframe": True}},
    ]
    imgs = [Img(f"i{i}.png", [ann("car", **extra)], color=(i, 0, 9), extra={"date_captured": 0, "flickr_url": "u"})
            for i, extra in enumerate(extras)]
    src = write_dataset(tmp_path / "s", {"default": imgs}, "cvat")
    original = json.loads((src / "annotations" / "instances_default.json").read_text())["annotations"]
    merge_datasets([SourceRef(src, "s")], tmp_path / "out", MergeOptions(split_mode="ratio"))
    merged = _all(tmp_path / "out")
    strip = lambda a: {k: v for k, v in a.items() if k not in ("id", "image_id", "category_id")}  # noqa: E731
    assert sorted(map(json.dumps, map(strip, merged))) == sorted(map(json.dumps, map(strip, original)))
    images = [i for s in ("train", "valid", "test") for i in load_split(tmp_path / "out", s)["images"]]
    assert all(i["flickr_url"] == "u" and i["license"] == 0 for i in images)


@pytest.mark.parametrize(
    ("box_fix", "expected_box", "dropped"),
    [("clip", [15.0, 2.0, 5.0, 5.0], {}), ("drop", None, {"box_outside": 1}), ("none", [15, 2, 10, 5], {})],
)
def test_box_fix_in_merge(tmp_path, box_fix, expected_box, dropped):
    imgs = three_images("a") + [Img("o.png", [ann("car", [15, 2, 10, 5]), ann("car", [1, 1, 0, 3])], color=(99, 1, 1))]
    src = _src(tmp_path, "a", {"train": imgs})
    result = merge_datasets([src], tmp_path / "out", MergeOptions(box_fix=box_fix))
    boxes = [a["bbox"] for a in _all(tmp_path / "out")]
    if expected_box is None:
        assert [15, 2, 10, 5] not in boxes
    else:
        assert expected_box in boxes
    expected = dict(dropped)
    if box_fix != "none":
        expected["box_nonpositive"] = 1
    assert result.dropped == dict(sorted(expected.items()))


def test_dangling_references_are_dropped_and_reported(tmp_path):
    src = write_dataset(tmp_path / "s", {"train": three_images("a")})
    path = src / "train" / "_annotations.coco.json"
    data = json.loads(path.read_text())
    data["annotations"] += [{**data["annotations"][0], "id": 50, "image_id": 77},
                            {**data["annotations"][0], "id": 51, "category_id": 77},
                            {**data["annotations"][0], "id": 1}]
    path.write_text(json.dumps(data))
    result = merge_datasets([SourceRef(src, "s")], tmp_path / "out", MergeOptions())
    assert result.dropped == {"unknown_category": 1, "unknown_image": 1}
    found = {(f.code, f.id) for f in result.findings}
    assert {("unknown_image", 50), ("unknown_category", 51), ("duplicate_annotation_id", 1)} <= found
    assert result.counts["annotations"] == 4  # the duplicate id is renumbered, not lost
    assert inspect_dataset(tmp_path / "out").ok


def test_missing_image_files_fail_the_merge_unless_skipped(tmp_path):
    src = write_dataset(tmp_path / "s", {"train": three_images("a") + [Img("gone.png", [ann("car")], color=(1, 2, 3))]})
    (src / "train" / "gone.png").unlink()
    with pytest.raises(DatasetError, match=r"1 of 4 images can't be used \(image_missing 1\): .*gone.png"):
        merge_datasets([SourceRef(src, "s")], tmp_path / "out", MergeOptions())
    assert not (tmp_path / "out").exists()
    result = merge_datasets([SourceRef(src, "s")], tmp_path / "out", MergeOptions(skip_missing=True))
    assert result.dropped == {"image_dropped": 1}
    assert [(f.code, f.id, f.action) for f in result.findings if f.code == "image_missing"] == [
        ("image_missing", 4, "dropped")]
    assert [(s["code"], s["id"]) for s in result.skipped_images] == [("image_missing", 4)]
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["skipped_images"][0]["file"].endswith("gone.png")
    assert manifest["totals"] == {"images": 4, "annotations": 4}
    assert (result.counts["images"], result.counts["annotations"]) == (3, 3)


def test_images_are_hard_linked_and_sources_untouched(tmp_path):
    src = _src(tmp_path, "a", {"train": three_images("a")})
    before = tree_digest(src.path)
    merge_datasets([src], tmp_path / "out", MergeOptions())
    assert tree_digest(src.path) == before
    linked = [p for p in (tmp_path / "out").rglob("*.png")]
    assert linked and all(os.stat(p).st_nlink >= 2 for p in linked)
    merge_datasets([src], tmp_path / "copy", MergeOptions(link_images=False))
    assert all(os.stat(p).st_nlink == 1 for p in (tmp_path / "copy").rglob("*.png"))


def test_rerun_is_byte_identical_and_replaces_previous_output(tmp_path):
    a = _src(tmp_path, "a", {"Train": three_images("a"), "Validation": three_images("v", "dog", 30)}, "cvat")
    b = _src(tmp_path, "b", {"default": three_images("a", "dog", 60)}, "cvat-flat", as_zip=True)
    opts = MergeOptions(split_mode="ratio", seed=3, group_by_source=False)
    merge_datasets([a, b], tmp_path / "one", opts)
    merge_datasets([a, b], tmp_path / "two", opts)
    assert tree_digest(tmp_path / "one") == tree_digest(tmp_path / "two")
    merge_datasets([a, b], tmp_path / "one", opts)  # replaces an earlier output in place
    assert tree_digest(tmp_path / "one") == tree_digest(tmp_path / "two")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_manifest_records_sources_hashes_counts_and_findings(tmp_path):
    a = _src(tmp_path, "a", {"Train": three_images("a"), "Validation": three_images("v", "dog", 30)}, "cvat")
    result = merge_datasets([a], tmp_path / "out", MergeOptions())
    m = json.loads(result.manifest_path.read_text())
    assert result.manifest_path == tmp_path / "out" / "dataset_manifest.json"
    source = m["sources"][0]
    assert source["origin"] == {"type": "local", "path": "a"} and source["layout"] == "cvat"
    assert source["images"] == 6 and source["annotations"] == 6
    for f in source["annotation_files"]:
        assert f["sha256"] == hashlib.sha256((a.path / f["path"]).read_bytes()).hexdigest()
    assert m["counts"] == result.counts
    assert set(m["counts"]["splits"]) == {"train", "valid", "test"}
    assert m["findings"]["counts"] == {f: n for f, n in sorted(
        __import__("collections").Counter(x.code for x in result.findings).items())}


def test_output_overlapping_a_source_or_foreign_folder_is_refused(tmp_path):
    src = _src(tmp_path, "a", {"train": three_images("a")})
    with pytest.raises(OutputError, match="overlaps"):
        merge_datasets([src], src.path / "merged", MergeOptions())
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(OutputError, match="not a merged dataset"):
        merge_datasets([src], foreign, MergeOptions())
    assert (foreign / "thesis.tex").read_text() == "precious"
    with pytest.raises(DatasetError, match="used twice"):
        merge_datasets([src, src], tmp_path / "o", MergeOptions())


@pytest.mark.parametrize("when", [1, 3, 5])
def test_interrupted_merge_leaves_no_output_behind(tmp_path, monkeypatch, when):
    src = _src(tmp_path, "a", {"train": three_images("a") + three_images("b", color_base=20)})
    calls = {"n": 0}
    real = Tree.copy_to

    def flaky(self, rel, dest, link=True):
        calls["n"] += 1
        if calls["n"] == when:
            raise KeyboardInterrupt
        return real(self, rel, dest, link)

    monkeypatch.setattr(Tree, "copy_to", flaky)
    with pytest.raises(KeyboardInterrupt):
        merge_datasets([src], tmp_path / "out", MergeOptions())
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temporary sibling left


def test_interrupted_rerun_keeps_the_previous_output(tmp_path, monkeypatch):
    src = _src(tmp_path, "a", {"train": three_images("a")})
    merge_datasets([src], tmp_path / "out", MergeOptions())
    before = tree_digest(tmp_path / "out")
    monkeypatch.setattr(Tree, "copy_to", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        merge_datasets([src], tmp_path / "out", MergeOptions())
    assert tree_digest(tmp_path / "out") == before


def test_annotations_only_mode_reads_no_images(tmp_path):
    src = _src(tmp_path, "a", {"default": three_images("a") + three_images("b", "dog", 9)}, "cvat", images=False)
    result = merge_datasets([src], tmp_path / "out", MergeOptions(copy_images=False))
    assert result.counts["annotations"] == 6
    assert not list((tmp_path / "out").rglob("*.png"))
    assert json.loads(result.manifest_path.read_text())["images_included"] is False


def test_unusual_key_order_and_annotations_before_images(tmp_path):
    src = write_dataset(tmp_path / "s", {"train": three_images("a") + three_images("b", "dog", 9)})
    path = src / "train" / "_annotations.coco.json"
    data = json.loads(path.read_text())
    reordered = {
        "annotations": [dict(reversed(list(a.items()))) for a in data["annotations"]],
        "images": data["images"],
        "categories": data["categories"],
    }
    path.write_text(json.dumps(reordered, indent=2))
    result = merge_datasets([SourceRef(src, "s")], tmp_path / "out", MergeOptions())
    assert result.counts["classes"] == {"car": 3, "dog": 3}
    assert inspect_dataset(tmp_path / "out").ok


def test_strict_merge_fails_on_findings_and_leaves_nothing(tmp_path):
    src = write_dataset(tmp_path / "s", {"train": three_images("a") + [Img("o.png", [ann("car", [1, 1, 0, 0])])]})
    with pytest.raises(DatasetError, match="strict"):
        merge([SourceRef(src, "s")], tmp_path / "out", DataConfig(strict=True))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seed", range(12))
def test_property_merge_keeps_every_annotation_and_image(tmp_path, seed):
    """Random sources: per-class counts after = before minus what a stated rule dropped; images likewise."""
    rnd = random.Random(seed)
    names = ["car", "dog", "cat", "bus", "tree"]
    drop = rnd.choice([None, "tree"])
    sources, before, images_before = [], {}, 0
    colours = [(rnd.randrange(256), rnd.randrange(256), k) for k in range(200)]
    shared = colours[:4]  # some images appear in several sources (byte-identical)
    for s in range(rnd.randint(1, 4)):
        subsets = {}
        layout = rnd.choice(["rfdetr", "cvat", "cvat-flat", "coco"])
        subset_names = {"rfdetr": ["train", "valid", "test"], "cvat": ["Train", "Validation", "default"],
                        "cvat-flat": ["default"], "coco": ["train", "val"]}[layout]
        for sub in rnd.sample(subset_names, rnd.randint(1, len(subset_names))):
            imgs = []
            for i in range(rnd.randint(1, 6)):
                colour = rnd.choice(shared) if rnd.random() < 0.2 else colours.pop()
                anns = [ann(rnd.choice(names), [rnd.uniform(0, 10), rnd.uniform(0, 8), rnd.uniform(1, 9),
                                                rnd.uniform(1, 7)]) for _ in range(rnd.randint(0, 4))]
                imgs.append(Img(f"img{i}.png", anns, color=colour))
            subsets[sub] = imgs
        if sum(len(v) for v in subsets.values()) == 0:
            continue
        ref = _src(tmp_path, f"s{s}", subsets, layout, categories=rnd.sample(names, len(names)))
        sources.append(ref)
        for imgs in subsets.values():
            images_before += len(imgs)
            for img in imgs:
                for a in img.anns:
                    before[a["cat"]] = before.get(a["cat"], 0) + 1
    if images_before < 3:
        pytest.skip("too few images for three splits")
    opts = MergeOptions(class_map=ClassMap(drop=frozenset({drop} if drop else ())), box_fix="clip",
                        split_mode=rnd.choice(["keep", "ratio"]), seed=seed, group_by_source=rnd.random() < 0.5)
    result = merge_datasets(sources, tmp_path / "out", opts)
    after = class_counts(tmp_path / "out")
    dropped_by_rule = result.dropped.get("class_map_drop", 0) + result.dropped.get("duplicate_annotation", 0)
    assert sum(before.values()) - sum(after.values()) == dropped_by_rule
    assert set(result.dropped) <= {"class_map_drop", "duplicate_annotation", "box_outside"}
    for name, n in before.items():
        if name != drop:
            assert after.get(name, 0) <= n
            # Only duplicate-rule drops remove annotations of a kept class.
            assert n - after.get(name, 0) <= result.dropped.get("duplicate_annotation", 0)
    duplicates = sum(1 for f in result.findings if f.code == "duplicate_image")
    assert result.counts["images"] == images_before - duplicates
    assert all(result.counts["splits"][s]["images"] > 0 for s in ("train", "valid", "test"))
    assert inspect_dataset(tmp_path / "out").ok


@pytest.mark.parametrize(
    "images",
    [
        [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 5}, {"id": "b", "file_name": "b.jpg", "width": 2.5,
                                                                      "height": 1}],
        [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 5}, {"id": 1, "file_name": "b.jpg", "width": 1,
                                                                      "height": 1}],
        [{"id": 1, "file_name": "", "width": 10, "height": 5}],
        [{"id": True, "file_name": "a.jpg", "width": 10, "height": 5}],
        [{"id": 1.0, "file_name": "a.jpg", "width": 10, "height": 5}],
        [{"id": 1, "file_name": "a.jpg", "width": 0, "height": 5}],
        [{"id": 1, "file_name": "a.jpg", "width": float("nan"), "height": 5}],
        [{"id": 1, "file_name": "a.jpg", "width": float("inf"), "height": 5}],
        [{"id": 1, "file_name": "a.jpg", "width": 10**400, "height": 5}],
        [{"id": 1, "file_name": "a.jpg", "width": True, "height": 5}],
        [{"id": 1, "file_name": "a.jpg", "height": 5}],
        [{"id": 1, "file_name": ["a.jpg"], "width": 1, "height": 5}],
        [["not", "a", "dict"], {"id": 2, "file_name": "b.jpg", "width": 1, "height": 1}],
        [],
    ],
)
def test_image_records_checked_in_bulk_as_one_at_a_time(tmp_path, images):
    """The mapped check of a file's image records (annotations-only merges) decides what the loop decides."""
    from rfdetr_trainer.coco import merge as merge_module

    def run(bulk: bool):
        m = merge_module._Merger([], MergeOptions(copy_images=False), None)
        f = type("F", (), {"src": 0, "label": "x.json", "n_images": 0})()
        m.files.append(f)
        if not bulk:
            m._images_clean = lambda f, imgs: None
        try:
            index = m._images(f, images)
        except Exception as exc:  # noqa: BLE001 - both ways must fail alike
            return type(exc), str(exc)
        return index, [(im.src, im.sub, im.rec, im.rel) for im in m.images], [x.line() for x in m.findings], f.n_images

    assert run(True) == run(False)
