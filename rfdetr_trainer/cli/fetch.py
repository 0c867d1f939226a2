"""``rfdetr-trainer fetch``: sources -> an rfdetr train/valid/test folder, whose path is printed last."""

from __future__ import annotations

from rfdetr_trainer.cli import options as o
from rfdetr_trainer.cli.common import emit, load, stdout_to_stderr


def fetch_command(
    dataset_dir: o.DatasetDir = None, data_dir: o.DataOutputDir = None, source_type: o.SourceType = None,
    cvat_task_ids: o.CvatTaskIds = None, cvat_project_ids: o.CvatProjectIds = None,
    cvat_subsets: o.CvatSubsets = None, cvat_downloader: o.CvatDownloader = None,
    cvat_job_stage: o.CvatJobStage = None, cvat_job_state: o.CvatJobState = None, gt_to_test: o.GtToTest = None,
    minio_bucket: o.MinioBucket = None, minio_prefix: o.MinioPrefix = None, refresh: o.Refresh = None,
    split: o.Split = None, split_seed: o.SplitSeed = None, group_by_source: o.GroupBySource = None,
    class_map: o.ClassMap = None, strict: o.Strict = None,
    clearml_dataset: o.ClearMLDataset = None, clearml_dataset_id: o.ClearMLDatasetId = None,
    config: o.ConfigFile = None, env_file: o.EnvFile = None, json_out: o.JsonOut = False,
) -> None:
    """Fetch CVAT tasks/projects, S3/MinIO prefixes or local folders and lay them out as train/valid/test."""
    from rfdetr_trainer.pipeline.stages import fetch_stage

    settings = load(locals())
    with stdout_to_stderr():
        result = fetch_stage(settings)
    emit(result.to_dict(), as_json=json_out, last_line=None if json_out else str(result.dataset_dir))
