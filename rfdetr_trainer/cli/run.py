"""``rfdetr-trainer run``: fetch -> train -> predict -> export, and a run manifest naming every artifact."""

from __future__ import annotations

from rfdetr_trainer.cli import options as o
from rfdetr_trainer.cli.common import emit, load, stdout_to_stderr


def run_command(
    dataset_dir: o.DatasetDir = None, data_dir: o.DataOutputDir = None, source_type: o.SourceType = None,
    cvat_task_ids: o.CvatTaskIds = None, cvat_project_ids: o.CvatProjectIds = None,
    cvat_subsets: o.CvatSubsets = None, cvat_downloader: o.CvatDownloader = None,
    cvat_job_stage: o.CvatJobStage = None, cvat_job_state: o.CvatJobState = None, gt_to_test: o.GtToTest = None,
    minio_bucket: o.MinioBucket = None, minio_prefix: o.MinioPrefix = None, refresh: o.Refresh = None,
    split: o.Split = None, split_seed: o.SplitSeed = None, group_by_source: o.GroupBySource = None,
    class_map: o.ClassMap = None, strict: o.Strict = None, skip_missing: o.SkipMissing = None,
    cache_dir: o.CacheDir = None, upload_to: o.UploadTo = None,
    clearml_dataset_id: o.ClearMLDatasetId = None,
    model_type: o.ModelType = None, pretrain_weights: o.PretrainWeights = None, num_classes: o.NumClasses = None,
    epochs: o.Epochs = None, batch_size: o.BatchSize = None, grad_accum_steps: o.GradAccum = None, lr: o.Lr = None,
    resolution: o.Resolution = None, weight_decay: o.WeightDecay = None, device: o.Device = None,
    ema: o.UseEma = None, early_stopping: o.EarlyStopping = None, early_stopping_patience: o.Patience = None,
    checkpoint_interval: o.CheckpointInterval = None, resume: o.Resume = None, seed: o.Seed = None,
    num_workers: o.NumWorkers = None, devices: o.Devices = None, strategy: o.Strategy = None,
    num_nodes: o.NumNodes = None, max_steps: o.MaxSteps = None, output_dir: o.OutputDir = None,
    cache: o.Cache = None, cache_max_gb: o.CacheMaxGb = None, compile: o.Compile = None,
    run_name: o.RunName = None, clearml: o.ClearML = None, project_name: o.ProjectName = None,
    task_name: o.TaskName = None, tags: o.Tags = None, clearml_offline: o.ClearMLOffline = None,
    clearml_required: o.ClearMLRequired = None, remote: o.Remote = None, tensorboard: o.TensorBoard = None,
    confidence_threshold: o.Confidence = None, iou_threshold: o.Iou = None, export_format: o.ExportFormat = None,
    half: o.Half = None, simplify: o.Simplify = None, opset: o.Opset = None, dynamic_batch: o.DynamicBatch = None,
    export_evaluate: o.ExportEvaluate = None,
    config: o.ConfigFile = None, env_file: o.EnvFile = None, json_out: o.JsonOut = False,
    augment: o.Augment = None, augmentation_backend: o.AugmentationBackend = None, multi_scale: o.MultiScale = None,
    freeze_encoder: o.FreezeEncoder = None, lora: o.Lora = None, lr_scheduler: o.LrScheduler = None,
    warmup_epochs: o.WarmupEpochs = None, eval_interval: o.EvalInterval = None, num_queries: o.NumQueries = None,
    eval_max_dets: o.EvalMaxDets = None, save_dataset_grids: o.SaveDatasetGrids = None, max_time: o.MaxTime = None,
    init_from: o.InitFrom = None,
) -> None:
    """Run the whole pipeline; prints every artifact, then the run manifest, and the best checkpoint last
    (as ``train`` does, so ``ckpt=$(rfdetr-trainer run …)`` works)."""
    from rfdetr_trainer.pipeline.context import Enqueued
    from rfdetr_trainer.pipeline.runner import run

    settings = load(locals())
    with stdout_to_stderr():
        result = run(settings)
    if result is None:  # a DDP rank other than 0: rank 0 reports
        return
    if isinstance(result, Enqueued):
        print(f"enqueued: ClearML task {result.task_id} on queue {result.queue}")
        return
    if json_out:
        emit({**result.manifest, "manifest_path": str(result.paths.manifest),
              "best_checkpoint": result.artifacts.get("best_checkpoint")}, as_json=True)
        return
    artifacts = result.artifacts
    best = artifacts.get("best_checkpoint")
    for name, path in artifacts.items():
        print(f"{name}: {path}")
    print(f"manifest: {result.paths.manifest}")
    if best:
        print(best)
