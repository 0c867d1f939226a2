"""Versioned datasets in ClearML: register a prepared dataset as a ``clearml.Dataset`` version, pull one back.

- :func:`register_version`: parent = the latest *completed* version with the same name and project, so ClearML
  stores and shows only what changed; the dataset manifest (sources with CVAT task ids and ``updated_date``, S3
  keys and ETags, counts) becomes the version's ``metadata`` artifact; files are uploaded and the version is
  finalized, so ``Dataset.get`` finds it.
- :func:`pull_version`: ``Dataset.get(dataset_id=…, alias=…).get_local_copy()``, which is how a clearml-agent
  worker gets the data. With ``alias`` set inside a running task, ClearML records the dataset id under the
  task's ``Datasets`` hyperparameters: that is the link from a trained model's task to its data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import ConfigError, SourceError, TrackingError
from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)

#: Hyperparameter alias under ``Datasets/`` on the training task.
ALIAS = "train"


def _latest(name: str, project: str) -> Any:
    from clearml import Dataset

    try:
        return Dataset.get(dataset_name=name, dataset_project=project, only_completed=True,
                           silence_alias_warnings=True)
    except ValueError:  # "Could not find Dataset …": the first version has no parent
        return None


def register_version(folder: Path, *, name: str, project: str, manifest_path: Path | None = None,
                     tags: list[str] | None = None) -> str:
    """Upload ``folder`` as a new version of dataset ``name`` and return its id.

    Raises:
        TrackingError: ClearML is unreachable or refuses the upload.
    """
    from clearml import Dataset

    folder = Path(folder)
    manifest = {}
    if manifest_path and Path(manifest_path).is_file():
        manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    try:
        parent = _latest(name, project)
        dataset = Dataset.create(dataset_name=name, dataset_project=project, dataset_tags=tags or None,
                                 parent_datasets=[parent.id] if parent is not None else None,
                                 description=f"rfdetr-trainer dataset from {folder.name}")
        dataset.sync_folder(str(folder))
        if manifest:
            dataset.set_metadata(manifest, metadata_name="metadata", ui_visible=False)
        dataset.upload()
        dataset.finalize()
    except TrackingError:
        raise
    except Exception as exc:  # clearml raises ValueError, requests and its own errors; one line either way
        raise TrackingError(f"ClearML: registering dataset {project}/{name} failed: {exc}",
                            hint="check clearml.conf / CLEARML_API_HOST and the files server") from exc
    log.info("ClearML dataset %s/%s version %s registered (parent %s)", project, name, dataset.id,
             parent.id if parent is not None else "none")
    return str(dataset.id)


def pull_version(dataset_id: str, *, alias: str | None = ALIAS) -> Path:
    """A local, read-only copy of dataset version ``dataset_id`` (cached by ClearML).

    Raises:
        ConfigError: no such dataset id. SourceError: its files cannot be downloaded.
    """
    from clearml import Dataset

    try:
        dataset = Dataset.get(dataset_id=dataset_id, alias=alias, silence_alias_warnings=alias is None)
    except ValueError as exc:
        raise ConfigError(f"ClearML dataset {dataset_id}: not found ({exc})",
                          hint="check --clearml-dataset-id") from None
    try:
        return Path(dataset.get_local_copy())
    except Exception as exc:  # noqa: BLE001 - storage errors vary by backend
        raise SourceError(f"ClearML dataset {dataset_id}: download failed: {exc}") from exc
