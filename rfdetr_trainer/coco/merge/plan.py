"""Between the passes: find duplicated images, assign splits, name each output image."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from operator import add
from pathlib import PurePosixPath

from rfdetr_trainer.coco.io import sha256_bytes
from rfdetr_trainer.coco.layout import safe_relpath
from rfdetr_trainer.coco.merge.state import MergeState
from rfdetr_trainer.coco.schema import SPLITS, Finding
from rfdetr_trainer.coco.split import TRAIN, plan_splits
from rfdetr_trainer.errors import DatasetError


class PlanPass(MergeState):
    """Decisions taken on what pass 1 kept, before anything is written."""

    def dedupe(self) -> None:
        """Find byte-identical images (same size first, then sha256) and point copies at the first one."""
        for i, im in enumerate(self.images):
            im.kept = i
        if not self.opt.copy_images:
            return
        by_size: dict[int, list[int]] = defaultdict(list)
        for i, im in enumerate(self.images):
            tree = self.files[im.sub].dataset.tree
            by_size[tree.size(im.rel)].append(i)
        candidates = [group for group in by_size.values() if len(group) > 1]
        for n, group in enumerate(candidates):
            first_of: dict[str, int] = {}
            for i in group:
                im = self.images[i]
                tree = self.files[im.sub].dataset.tree
                digest = sha256_bytes(tree.read_bytes(im.rel))
                if digest in first_of:
                    im.kept = first_of[digest]
                    kept = self.images[im.kept]
                    self.duplicate_images += 1
                    self.findings.append(
                        Finding("duplicate_image",
                                f"same bytes as {self.files[kept.sub].dataset.tree.describe(kept.rel)}; stored once",
                                tree.describe(im.rel), im.rec["id"], "merged")
                    )
                else:
                    first_of[digest] = i
            self.progress("dedupe", n + 1, len(candidates))

    def assign_splits(self) -> None:
        unique = [i for i, im in enumerate(self.images) if im.kept == i]
        order = {s: n for n, s in enumerate(SPLITS)}
        presets = [order.get(self.files[self.images[i].sub].subset.split) for i in unique]
        groups = [self.sources[self.images[i].src].name for i in unique]
        s = self.opt
        splits, findings = plan_splits(
            presets, groups, mode=s.split_mode, ratios=s.ratios, seed=s.seed, group_by_source=s.group_by_source
        )
        self.findings.extend(findings)
        for i, sp in zip(unique, splits):
            self.images[i].split = sp
        self._classes_into_train()
        sizes = Counter(self.images[i].split for i in unique)
        for sp, name in enumerate(SPLITS):
            if not sizes[sp]:
                raise DatasetError(f"split {name!r} would be empty", hint="add images or change the split ratios")

    def _class_split_counts(self) -> list[Counter[int]]:
        counts: list[Counter[int]] = [Counter(), Counter(), Counter()]
        images = self.images
        split_of = [images[im.kept].split for im in images]
        ncat = len(self.cat_names)
        base = [sp * ncat for sp in split_of]
        for f in self.files:
            if f.images and min(f.images) >= 0:  # always, as take keeps none without an image: count in C
                for key, n in Counter(map(add, map(base.__getitem__, f.images), f.cats)).items():
                    counts[key // ncat][key % ncat] += n
                continue
            for gi, ci in zip(f.images, f.cats):
                if gi >= 0:
                    counts[split_of[gi]][ci] += 1
        return counts

    def _classes_into_train(self) -> None:
        """Move an image into train for each annotated class train would otherwise lack."""
        counts = self._class_split_counts()
        missing = [c for c in range(len(self.cat_names)) if not counts[TRAIN][c] and (counts[1][c] or counts[2][c])]
        if not missing:
            return
        images = self.images
        sizes = Counter(im.split for i, im in enumerate(images) if im.kept == i)
        for c in missing:
            moved = False
            for f in self.files:
                for gi, ci in zip(f.images, f.cats):
                    if ci != c:
                        continue
                    t = images[gi].kept
                    im = images[t]
                    if im.split == TRAIN:  # an earlier move already brought this class in
                        moved = True
                        break
                    if self.opt.group_by_source:
                        unit = [j for j, x in enumerate(images) if x.kept == j and x.split == im.split
                                and x.src == im.src]
                    else:
                        unit = [t]
                    if sizes[im.split] - len(unit) < 1:
                        continue
                    sizes[im.split] -= len(unit)
                    sizes[TRAIN] += len(unit)
                    for j in unit:
                        images[j].split = TRAIN
                    self.findings.append(
                        Finding("split_adjusted", f"moved to train so that class {self.cat_names[c]!r} is trained on",
                                f.label, im.rec["id"], "moved")
                    )
                    moved = True
                    break
                if moved:
                    break
            if not moved:
                self.findings.append(
                    Finding("class_missing_in_train",
                            f"class {self.cat_names[c]!r} has annotations but none can be put in train")
                )

    def name_images(self) -> list[list[int]]:
        """Give each unique image its output id and a file name no other image in its split has."""
        per_split: list[list[int]] = [[], [], []]
        used: list[set[str]] = [{"_annotations.coco.json"} for _ in SPLITS]
        first_rename = None
        for i, im in enumerate(self.images):
            if im.kept != i:
                continue
            members = per_split[im.split]
            members.append(i)
            im.out_id = len(members)
            original = im.rec["file_name"]
            if "/" in original or "\\" in original or original.startswith("."):
                name = safe_relpath(original) or PurePosixPath(original.replace("\\", "/")).name or f"image_{i}"
            else:
                name = original  # the common flat name needs no path parsing
            taken = used[im.split]
            key = name.casefold()
            if key in taken:
                stem, ext = os.path.splitext(name)
                n = 1
                while f"{stem}_{n}{ext}".casefold() in taken:
                    n += 1
                candidate = f"{stem}_{n}{ext}"
                self.renamed += 1
                first_rename = first_rename or (original, candidate)
                name = candidate
                key = name.casefold()
            taken.add(key)
            im.out_name = name
        if self.renamed:
            old, new = first_rename
            self.findings.append(
                Finding("file_renamed", f"{self.renamed} file name(s) changed to avoid collisions, e.g. "
                        f"{old} -> {new}", action="renamed")
            )
        return per_split
