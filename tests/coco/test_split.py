"""Splits: kept from sources, or by seeded ratio, optionally by source; never empty; every class in train."""

from __future__ import annotations

import pytest
from support.coco_fixtures import Img, ann, load_split, write_dataset

from rfdetr_trainer.coco.merge import MergeOptions, merge_datasets
from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.coco.split import plan_splits, ratio_split
from rfdetr_trainer.errors import DatasetError


def _imgs(prefix: str, n: int, cat: str = "car", base: int = 0) -> list[Img]:
    return [Img(f"{prefix}{i}.png", [ann(cat)], color=(base + i, 5, 5)) for i in range(n)]


def _names(root, split):
    return sorted(i["file_name"] for i in load_split(root, split)["images"])


@pytest.mark.parametrize(
    ("layout", "subsets"),
    [
        ("cvat", {"Train": _imgs("t", 3), "Validation": _imgs("v", 2, base=50), "Test": _imgs("x", 1, base=90)}),
        ("rfdetr", {"train": _imgs("t", 3), "valid": _imgs("v", 2, base=50), "test": _imgs("x", 1, base=90)}),
        ("coco", {"train2017": _imgs("t", 3), "val2017": _imgs("v", 2, base=50), "test2017": _imgs("x", 1, base=90)}),
    ],
)
def test_keep_mode_maps_source_subsets(tmp_path, layout, subsets):
    src = write_dataset(tmp_path / "s", subsets, layout)
    merge_datasets([SourceRef(src, "s")], tmp_path / "out", MergeOptions(split_mode="keep"))
    assert _names(tmp_path / "out", "train") == ["t0.png", "t1.png", "t2.png"]
    assert _names(tmp_path / "out", "valid") == ["v0.png", "v1.png"]
    assert _names(tmp_path / "out", "test") == ["x0.png"]


@pytest.mark.parametrize("subset", ["default", "Train"])
def test_single_subset_source_gets_valid_and_test_by_seeded_ratio(tmp_path, subset):
    src = write_dataset(tmp_path / "s", {subset: _imgs("i", 20)}, "cvat")
    counts = []
    for run in ("a", "b"):
        result = merge_datasets([SourceRef(src, "s")], tmp_path / run, MergeOptions(seed=7))
        counts.append({s: _names(tmp_path / run, s) for s in ("train", "valid", "test")})
        assert [result.counts["splits"][s]["images"] for s in ("train", "valid", "test")] == [16, 2, 2]
    assert counts[0] == counts[1]


def test_ratio_mode_resplits_with_seed(tmp_path):
    src = write_dataset(tmp_path / "s", {"Train": _imgs("t", 30), "Validation": _imgs("v", 10, base=100)}, "cvat")
    runs = {}
    for seed in (1, 1, 2):
        out = tmp_path / f"o{len(runs)}"
        result = merge_datasets([SourceRef(src, "s")], out, MergeOptions(split_mode="ratio", ratios=(0.5, 0.3, 0.2),
                                                                         seed=seed))
        assert [result.counts["splits"][s]["images"] for s in ("train", "valid", "test")] == [20, 12, 8]
        runs[len(runs)] = _names(out, "valid")
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_group_by_source_never_straddles(tmp_path):
    refs = [SourceRef(write_dataset(tmp_path / f"s{k}", {"default": _imgs(f"s{k}_", 3 + k, base=10 * k)}, "cvat"),
                      f"s{k}") for k in range(5)]
    merge_datasets(refs, tmp_path / "out", MergeOptions(split_mode="ratio", group_by_source=True, seed=4))
    where: dict[str, set] = {}
    for split in ("train", "valid", "test"):
        names = _names(tmp_path / "out", split)
        assert names
        for n in names:
            where.setdefault(n.split("_")[0], set()).add(split)
    assert all(len(s) == 1 for s in where.values()), where


def test_group_by_source_with_too_few_sources_falls_back_with_a_warning(tmp_path):
    refs = [SourceRef(write_dataset(tmp_path / f"s{k}", {"default": _imgs(f"s{k}_", 4, base=10 * k)}, "cvat"),
                      f"s{k}") for k in range(2)]
    result = merge_datasets(refs, tmp_path / "out", MergeOptions(split_mode="ratio", group_by_source=True))
    assert [f.code for f in result.findings if f.code == "split_group_fallback"] == ["split_group_fallback"]
    assert all(result.counts["splits"][s]["images"] for s in ("train", "valid", "test"))


def test_class_only_in_validation_is_moved_into_train(tmp_path):
    subsets = {"Train": _imgs("t", 3), "Validation": _imgs("v", 2, "dog", 50), "Test": _imgs("x", 1, base=90)}
    src = write_dataset(tmp_path / "s", subsets, "cvat")
    result = merge_datasets([SourceRef(src, "s")], tmp_path / "out", MergeOptions())
    assert result.counts["splits"]["train"]["classes"]["dog"] == 1
    assert result.counts["splits"]["valid"]["classes"]["dog"] == 1
    moved = [f for f in result.findings if f.code == "split_adjusted"]
    assert len(moved) == 1 and "dog" in moved[0].message


def test_class_that_cannot_reach_train_is_named_in_a_warning(tmp_path):
    subsets = {"Train": _imgs("t", 3), "Validation": _imgs("v", 1, "dog", 50), "Test": _imgs("x", 1, base=90)}
    src = write_dataset(tmp_path / "s", subsets, "cvat")
    result = merge_datasets([SourceRef(src, "s")], tmp_path / "out", MergeOptions())
    warning = [f for f in result.findings if f.code == "class_missing_in_train"]
    assert len(warning) == 1 and "'dog'" in warning[0].message


def test_fewer_than_three_images_is_a_dataset_error(tmp_path):
    src = write_dataset(tmp_path / "s", {"default": _imgs("i", 2)}, "cvat")
    with pytest.raises(DatasetError, match="at least one each"):
        merge_datasets([SourceRef(src, "s")], tmp_path / "out", MergeOptions())


@pytest.mark.parametrize(
    ("sizes", "ratios"),
    [([1] * 3, (0.8, 0.1, 0.1)), ([1] * 100, (0.7, 0.2, 0.1)), ([50, 1, 1], (0.8, 0.1, 0.1)),
     ([1, 1, 50, 3, 7], (0.6, 0.2, 0.2)), ([5] * 10, (1.0, 0.0, 0.0))],
)
def test_ratio_split_never_leaves_a_split_empty(sizes, ratios):
    units = [[0] * n for n in sizes]
    out = ratio_split(units, ratios, seed=0)
    assert set(out) == {0, 1, 2}
    assert out == ratio_split(units, ratios, seed=0)


def test_plan_splits_keeps_presets_and_fills_missing():
    presets = [0] * 10 + [1] * 3
    splits, findings = plan_splits(presets, ["a"] * 13, mode="keep", ratios=(0.8, 0.1, 0.1), seed=0,
                                   group_by_source=False)
    assert splits[10:] == [1, 1, 1]
    assert splits.count(2) >= 1 and not findings
