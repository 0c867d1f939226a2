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
        }


def collect_sources(data: DataConfig, *, progress: Any = None) -> list[SourceRef]:
    """Download remote sources (or name local ones) as :class:`SourceRef` s."""
    kind = data.resolved_source()
    if kind == "cvat":
        from rfdetr_trainer.integrations.cvat import fetch_cvat

        return fetch_cvat(data.cvat, Path(data.cache_dir), progress=progress)
    if kind == "minio":
        from rfdetr_trainer.integrations.s3 import fetch_s3

        return fetch_s3(data.minio, Path(data.cache_dir), progress=progress)
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


def prepared_dir(data: DataConfig) -> Path:
    """Where :func:`fetch` leaves the dataset, without fetching: for DDP ranks other than 0, which must not race
    rank 0's merge and only need the path."""
    dirs = data.local.dataset_dirs
    if (data.resolved_source() == "local" and len(dirs) == 1 and data.split.mode == "keep"
            and data.class_map is None and (Path(dirs[0]) / "train" / "_annotations.coco.json").is_file()):
        return Path(dirs[0])
    return Path(data.output_dir)


def fetch(data: DataConfig, *, progress: Any = None) -> FetchResult:
    """Fetch every configured source and return an rfdetr-layout dataset folder.

    A single local folder already in rfdetr layout, kept as split, with no class map, is validated and used in
    place (nothing is copied). Anything else is merged by the dataset engine into ``data.output_dir``.

    Raises:
        ConfigError: no source is configured, or a source's settings are incomplete.
        DatasetError: a folder is missing, malformed, or fails validation.
        SourceError, AuthError: a remote source failed.
    """
    from rfdetr_trainer.coco.layout import detect_layout
    from rfdetr_trainer.services.inspect import inspect_dataset, raise_for_report
    from rfdetr_trainer.services.merge import merge, publish_version

    refs = collect_sources(data, progress=progress)
    held_out = [r.name for r in refs if (r.origin.get("jobs") or {}).get("frames_ground_truth_to_test")]
    if held_out and data.split.mode == "ratio":
        raise ConfigError(f"--split re-splits every image, so ground-truth frames of {held_out[0]} could land in "
                          "train", hint="drop --split to keep the CVAT subsets, or pass --no-gt-to-test")
    single = refs[0].path if len(refs) == 1 else None
    if (single is not None and single.is_dir() and data.split.mode == "keep" and data.class_map is None
            and detect_layout(single) == "rfdetr"):
        report = inspect_dataset(single, box_fix="none", strict=data.strict)
        raise_for_report(report, data.strict)
        log.info("using %s in place (already train/valid/test)", single)
        manifest = single / "dataset_manifest.json"
        version = publish_version(single, manifest if manifest.is_file() else None, data)
        return FetchResult(single, refs, None, dict(getattr(report, "counts", {}) or {}), in_place=True,
                           clearml_dataset_id=version)
    result = merge(refs, Path(data.output_dir), data, progress=progress)
    version = publish_version(result.output_dir, result.manifest_path, data)
    return FetchResult(result.output_dir, refs, result.manifest_path, dict(result.counts),
                       clearml_dataset_id=version)
