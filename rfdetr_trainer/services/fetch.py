"""The fetch stage: bring every configured source to local disk and lay it out as train/valid/test."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.errors import ConfigError, DatasetError
from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.schemas import DataConfig

log = get_logger(__name__)


@dataclass
class FetchResult:
    """The dataset training reads, and where it came from."""

    dataset_dir: Path
    sources: list[SourceRef]
    manifest_path: Path | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    in_place: bool = False
    clearml_dataset_id: str | None = None  # the ClearML Dataset version registered from this fetch
    totals: dict[str, int] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        """What training stores in every checkpoint's notes: where the data came from and what it held.

        The dataset manifest goes in without its per-item findings list (counts of each finding stay), so a
        checkpoint alone tells which sources, class map, content hashes and counts it was trained on.
        """
        import json

        summary: dict[str, Any] | None = None
        if self.manifest_path and Path(self.manifest_path).is_file():
            summary = json.loads(Path(self.manifest_path).read_text(encoding="utf-8"))
            findings = summary.get("findings")
            if isinstance(findings, dict):
                summary["findings"] = {"counts": findings.get("counts", {})}
        return {"dataset_dir": str(self.dataset_dir), "sources": [s.origin for s in self.sources],
                "dataset_manifest": summary or {"path": None, "counts": self.counts}}

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_dir": str(self.dataset_dir),
            "manifest": str(self.manifest_path) if self.manifest_path else None,
            "in_place": self.in_place,
            "sources": [{"name": s.name, "path": str(s.path), "origin": s.origin} for s in self.sources],
            "counts": self.counts,
            **({"clearml_dataset_id": self.clearml_dataset_id} if self.clearml_dataset_id else {}),
            "kept": f"{self.counts.get('images', 0)} / {self.totals.get('images', self.counts.get('images', 0))} "
                    f"images, {self.counts.get('annotations', 0)} / "
                    f"{self.totals.get('annotations', self.counts.get('annotations', 0))} annotations",
        }


def collect_sources(data: DataConfig, *, progress: Any = None) -> list[SourceRef]:
    """Download remote sources (or name local ones) as :class:`SourceRef` s."""
    kind = data.resolved_source()
    if kind == "cvat":
        from rfdetr_trainer.integrations.cvat import fetch_cvat

        return fetch_cvat(data.cvat, Path(data.cache_dir), progress=progress)
    if kind == "minio":
        from rfdetr_trainer.integrations.s3 import fetch_s3

        return fetch_s3(data.minio, Path(data.cache_dir), progress=progress, strict=data.strict)
    if kind == "clearml":
        from rfdetr_trainer.integrations.clearml.dataset import pull_version

        if not data.clearml_dataset_id:
            raise ConfigError("source type clearml needs a dataset id", hint="pass --clearml-dataset-id ID")
        # Inside a running ClearML task the alias records the dataset id on it (Datasets/train).
        local = pull_version(data.clearml_dataset_id)
        return [SourceRef(local, f"clearml-{data.clearml_dataset_id[:12]}",
                          {"type": "clearml", "dataset_id": data.clearml_dataset_id})]
    if not data.local.dataset_dirs:
        raise ConfigError(
            "no data source configured",
            hint="pass --dataset-dir DIR, --cvat-task-ids ID…, or --minio-bucket B --minio-prefix P",
        )
    refs = []
    for i, folder in enumerate(data.local.dataset_dirs):
        folder = Path(folder)
        if not folder.exists():
            raise DatasetError(f"{folder}: dataset folder does not exist", hint="check --dataset-dir")
        name = folder.name if folder.name not in {r.name for r in refs} else f"{folder.name}-{i}"
        refs.append(SourceRef(folder, name, {"type": "local", "path": str(folder.resolve())}))
    return refs


def _in_place_candidate(data: DataConfig, refs: list[SourceRef] | None = None) -> Path | None:
    """The one local folder training can read as it is, or None when the dataset must be prepared.

    Only a single local folder already in rfdetr's split layout, kept as split, with no class map, and only when
    no output folder was asked for (``--data-dir``/``-o``, ``data.output_dir``): a folder asked for is always
    where the dataset is left.
    """
    if "output_dir" in data.model_fields_set or data.split.mode != "keep" or data.class_map is not None:
        return None
    if refs is not None:
        if len(refs) != 1 or refs[0].origin.get("type") != "local":
            return None
        folder = Path(refs[0].path)
    else:
        dirs = data.local.dataset_dirs
        if data.resolved_source() != "local" or len(dirs) != 1:
            return None
        folder = Path(dirs[0])
    return folder if (folder / "train" / "_annotations.coco.json").is_file() else None


def prepared_dir(data: DataConfig) -> Path:
    """Where :func:`fetch` leaves the dataset, without fetching: for DDP ranks other than 0, which must not race
    rank 0's merge and only need the path."""
    return _in_place_candidate(data) or Path(data.output_dir)


#: Findings that make a folder unusable in place: the merge drops (--skip-missing) or fixes (EXIF) them.
_NEEDS_MERGE = {"image_missing", "image_unreadable", "image_truncated", "image_size_mismatch", "exif_rotated"}


def fetch(data: DataConfig, *, progress: Any = None) -> FetchResult:
    """Fetch every configured source and return an rfdetr-layout dataset folder.

    A single local folder already in rfdetr layout, kept as split, with no class map and no output folder asked
    for, is validated and used in place (nothing is copied), unless its images need the merge: EXIF-rotated
    images are written upright there, and with ``skip_missing`` unusable images are dropped. Anything else is
    merged by the dataset engine into ``data.output_dir`` (images hard-linked from the cache where possible).

    Raises:
        ConfigError: no source is configured, or a source's settings are incomplete.
        DatasetError: a folder is missing, malformed, or fails validation (an image missing, undecodable or of
            another size than its JSON says fails with the count and the first files, unless ``skip_missing``).
        SourceError, AuthError: a remote source failed.
    """
    from rfdetr_trainer.services.inspect import inspect_dataset, raise_for_report
    from rfdetr_trainer.services.merge import merge, publish_version

    refs = collect_sources(data, progress=progress)
    held_out = [r.name for r in refs if (r.origin.get("jobs") or {}).get("frames_ground_truth_to_test")]
    if held_out and data.split.mode == "ratio":
        raise ConfigError(f"--split re-splits every image, so ground-truth frames of {held_out[0]} could land in "
                          "train", hint="drop --split to keep the CVAT subsets, or pass --no-gt-to-test")
    single = _in_place_candidate(data, refs)
    if single is not None:
        report = inspect_dataset(single, box_fix="none", strict=data.strict)
        needs_merge = [f for f in report.findings if f.code in _NEEDS_MERGE]
        if report.unusable and not data.skip_missing:
            from rfdetr_trainer.coco.images import problems_summary

            raise DatasetError(
                problems_summary(report.unusable, report.counts.get("images", 0)),
                hint="fix or remove them, or pass --skip-missing to drop them (each is listed in the manifest)")
        if not needs_merge:
            raise_for_report(report, data.strict)
        if not needs_merge:
            log.info("using %s in place (already train/valid/test)", single)
            manifest = single / "dataset_manifest.json"
            version = publish_version(single, manifest if manifest.is_file() else None, data)
            return FetchResult(single, refs, None, dict(getattr(report, "counts", {}) or {}), in_place=True,
                               clearml_dataset_id=version)
        log.info("%s: %d image(s) need the merge (%s); preparing %s", single, len(needs_merge),
                 ", ".join(sorted({f.code for f in needs_merge})), data.output_dir)
    result = merge(refs, Path(data.output_dir), data, progress=progress)
    version = publish_version(result.output_dir, result.manifest_path, data)
    return FetchResult(Path(result.output_dir).resolve(), refs, result.manifest_path, dict(result.counts),
                       totals=dict(result.totals), clearml_dataset_id=version)
