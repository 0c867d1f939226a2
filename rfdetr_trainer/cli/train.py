"""``rfdetr-trainer train``: prints the best checkpoint path as the last line of stdout."""

from __future__ import annotations

from rfdetr_trainer.cli import options as o
from rfdetr_trainer.cli.common import emit, load, stdout_to_stderr


def train_command(
    dataset_dir: o.DatasetDir = None, data_dir: o.DataOutputDir = None, model_type: o.ModelType = None,
    clearml_dataset_id: o.ClearMLDatasetId = None,
    pretrain_weights: o.PretrainWeights = None, num_classes: o.NumClasses = None, epochs: o.Epochs = None,
    batch_size: o.BatchSize = None, grad_accum_steps: o.GradAccum = None, lr: o.Lr = None,
    resolution: o.Resolution = None, weight_decay: o.WeightDecay = None, device: o.Device = None,
    ema: o.UseEma = None, early_stopping: o.EarlyStopping = None, early_stopping_patience: o.Patience = None,
    checkpoint_interval: o.CheckpointInterval = None, resume: o.Resume = None, seed: o.Seed = None,
    num_workers: o.NumWorkers = None, devices: o.Devices = None, strategy: o.Strategy = None,
    num_nodes: o.NumNodes = None, max_steps: o.MaxSteps = None, output_dir: o.OutputDir = None,
    cache: o.Cache = None, cache_max_gb: o.CacheMaxGb = None, compile: o.Compile = None,
    run_name: o.RunName = None, tensorboard: o.TensorBoard = None, strict: o.Strict = None,
    skip_missing: o.SkipMissing = None, cache_dir: o.CacheDir = None,
    clearml: o.ClearML = None, project_name: o.ProjectName = None, task_name: o.TaskName = None,
    tags: o.Tags = None, clearml_offline: o.ClearMLOffline = None, clearml_required: o.ClearMLRequired = None,
    remote: o.Remote = None, config: o.ConfigFile = None, env_file: o.EnvFile = None, json_out: o.JsonOut = False,
    augment: o.Augment = None, augmentation_backend: o.AugmentationBackend = None, multi_scale: o.MultiScale = None,
    freeze_encoder: o.FreezeEncoder = None, lora: o.Lora = None, lr_scheduler: o.LrScheduler = None,
    warmup_epochs: o.WarmupEpochs = None, eval_interval: o.EvalInterval = None, num_queries: o.NumQueries = None,
    eval_max_dets: o.EvalMaxDets = None, save_dataset_grids: o.SaveDatasetGrids = None, max_time: o.MaxTime = None,
    init_from: o.InitFrom = None, final_eval: o.FinalEvaluation = None,
    dry_run: o.DryRun = False,
) -> None:
    """Train RF-DETR on a dataset (validated first); the best checkpoint path is the last stdout line."""
    from rfdetr_trainer.pipeline.context import Enqueued
    from rfdetr_trainer.pipeline.stages import train_stage, train_summary

    settings = load(locals())
    if dry_run:
        from rfdetr_trainer.pipeline.stages import train_dry_run

        emit(train_dry_run(settings), as_json=True)
        return
    with stdout_to_stderr():
        result = train_stage(settings)
    if result is None:  # a DDP rank other than 0: rank 0 prints the checkpoint
        return
    if isinstance(result, Enqueued):
        print(f"enqueued: ClearML task {result.task_id}")
        return
    emit(train_summary(result), as_json=json_out, last_line=None if json_out else str(result.best_checkpoint))
