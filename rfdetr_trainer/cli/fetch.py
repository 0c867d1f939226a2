"""``rfdetr-trainer fetch``: sources -> an rfdetr train/valid/test folder, whose path is printed last."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rfdetr_trainer.cli import options as o
from rfdetr_trainer.cli.common import emit, load, stdout_to_stderr

#: As ``merge`` takes it: the folder the prepared dataset is left in (``--data-dir`` is the same setting).
FetchOutput = Annotated[Optional[Path], typer.Option(
    "--data-dir", "--output-dir", "-o", help="leave the prepared train/valid/test dataset here (hard links from the "
    "cache where possible); printed last, as an absolute path.", rich_help_panel=o.DATA, show_default=False)]


def fetch_command(
    dataset_dir: o.DatasetDir = None, data_dir: FetchOutput = None, source_type: o.SourceType = None,
    cvat_task_ids: o.CvatTaskIds = None, cvat_project_ids: o.CvatProjectIds = None,
    cvat_subsets: o.CvatSubsets = None, cvat_downloader: o.CvatDownloader = None,
    cvat_job_stage: o.CvatJobStage = None, cvat_job_state: o.CvatJobState = None, gt_to_test: o.GtToTest = None,
    minio_bucket: o.MinioBucket = None, minio_prefix: o.MinioPrefix = None, refresh: o.Refresh = None,
    split: o.Split = None, split_seed: o.SplitSeed = None, group_by_source: o.GroupBySource = None,
    class_map: o.ClassMap = None, strict: o.Strict = None, skip_missing: o.SkipMissing = None,
    cache_dir: o.CacheDir = None, clearml_dataset: o.ClearMLDataset = None,
    clearml_dataset_id: o.ClearMLDatasetId = None,
    config: o.ConfigFile = None, env_file: o.EnvFile = None, json_out: o.JsonOut = False,
) -> None:
    """Fetch CVAT tasks/projects, S3/MinIO prefixes or local folders and lay them out as train/valid/test."""
    from rfdetr_trainer.pipeline.stages import fetch_stage

    settings = load(locals())
    with stdout_to_stderr():
        result = fetch_stage(settings)
    emit(result.to_dict(), as_json=json_out, last_line=None if json_out else str(Path(result.dataset_dir).resolve()))
