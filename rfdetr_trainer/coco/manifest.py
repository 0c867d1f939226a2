"""``dataset_manifest.json``: what a merged dataset was made from and what it holds."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rfdetr_trainer.coco.io import write_text_atomic
from rfdetr_trainer.coco.schema import Finding
from rfdetr_trainer.errors import DatasetError

MANIFEST_NAME = "dataset_manifest.json"
MANIFEST_VERSION = 1
#: Findings listed per code; the counts stay complete. A messy source can have a finding per box.
FINDINGS_LISTED_PER_CODE = 200


def findings_section(findings: Iterable[Finding]) -> dict[str, Any]:
    """Counts per code, and the findings themselves up to :data:`FINDINGS_LISTED_PER_CODE` per code."""
    findings = list(findings)
    counts = Counter(f.code for f in findings)
    listed: Counter[str] = Counter()
    items = []
    for f in findings:
        if listed[f.code] < FINDINGS_LISTED_PER_CODE:
            listed[f.code] += 1
            items.append(f.to_dict())
    return {
        "counts": dict(sorted(counts.items())),
        "listed_per_code": FINDINGS_LISTED_PER_CODE,
        "items": items,
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest (stable key order, no timestamps, so identical inputs give identical bytes)."""
    write_text_atomic(path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def load_manifest(dataset_dir: Path) -> dict[str, Any] | None:
    """The manifest beside a merged dataset, or None when the folder has none."""
    path = Path(dataset_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable dataset manifest ({exc})") from None
