"""Shared option aliases: each flag's help text is written once, here.

Every option defaults to ``None`` so only flags the user actually passed override lower sources. ``KEYS``
maps a command parameter name to the settings key it sets; :func:`overrides` turns a command's ``locals()``
into the override dict for :func:`rfdetr_trainer.settings.load_settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

# Option groups shown in --help.
DATA = "Data"
MODEL = "Model"
TRAIN = "Training"
TRACK = "Tracking"
EVAL = "Prediction"
EXPORT = "Export"

ConfigFile = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="JSON or YAML config file (below env and flags in precedence).",
                 show_default=False),
]
EnvFile = Annotated[Path, typer.Option("--env-file", help="dotenv file with credentials and settings.")]
JsonOut = Annotated[bool, typer.Option("--json", help="print a JSON result on stdout.")]

# --- data
DatasetDir = Annotated[Optional[list[Path]], typer.Option(
    "--dataset-dir", "-d", help="local dataset folder (rfdetr, CVAT or plain COCO layout); repeatable.",
    rich_help_panel=DATA, show_default=False)]
DataOutputDir = Annotated[Optional[Path], typer.Option(
    "--data-dir", help="where the prepared train/valid/test dataset is written.", rich_help_panel=DATA,
    show_default=False)]
SourceType = Annotated[Optional[str], typer.Option(
    "--source-type", help="data source: auto, local, cvat, minio.", rich_help_panel=DATA, show_default=False)]
CvatTaskIds = Annotated[Optional[list[int]], typer.Option(
    "--cvat-task-ids", help="CVAT task ids: --cvat-task-ids 1 2 3.", rich_help_panel=DATA, show_default=False)]
CvatProjectIds = Annotated[Optional[list[int]], typer.Option(
    "--cvat-project-ids", help="CVAT project ids.", rich_help_panel=DATA, show_default=False)]
CvatSubsets = Annotated[Optional[list[str]], typer.Option(
    "--cvat-subsets", help="project subsets to keep, e.g. Train Validation.", rich_help_panel=DATA,
    show_default=False)]
CvatDownloader = Annotated[Optional[str], typer.Option(
    "--cvat-downloader", help="auto, sdk, http or http-legacy.", rich_help_panel=DATA, show_default=False)]
CvatJobStage = Annotated[Optional[list[str]], typer.Option(
    "--cvat-job-stage", help="keep frames of jobs in these stages: annotation validation acceptance.",
    rich_help_panel=DATA, show_default=False)]
CvatJobState = Annotated[Optional[list[str]], typer.Option(
    "--cvat-job-state", help="keep frames of jobs in these states: new in-progress completed rejected.",
    rich_help_panel=DATA, show_default=False)]
GtToTest = Annotated[Optional[bool], typer.Option(
    "--gt-to-test/--no-gt-to-test", help="frames of CVAT ground-truth jobs go to the test split (default on).",
    rich_help_panel=DATA, show_default=False)]
MinioBucket = Annotated[Optional[str], typer.Option(
    "--minio-bucket", help="S3/MinIO bucket holding datasets.", rich_help_panel=DATA, show_default=False)]
MinioPrefix = Annotated[Optional[list[str]], typer.Option(
    "--minio-prefix", help="key prefixes to fetch; several allowed.", rich_help_panel=DATA, show_default=False)]
Refresh = Annotated[Optional[bool], typer.Option(
    "--refresh/--no-refresh", help="fetch again even if the cached copy is current.", rich_help_panel=DATA,
    show_default=False)]
Split = Annotated[Optional[tuple[float, float, float]], typer.Option(
    "--split", help="re-split by ratio: --split 0.8 0.1 0.1 (default: keep the sources' subsets).",
    rich_help_panel=DATA, show_default=False)]
SplitSeed = Annotated[Optional[int], typer.Option(
    "--split-seed", help="seed of the ratio split.", rich_help_panel=DATA, show_default=False)]
GroupBySource = Annotated[Optional[bool], typer.Option(
    "--group-by-source/--no-group-by-source", help="keep each source's images in one split.",
    rich_help_panel=DATA, show_default=False)]
ClassMap = Annotated[Optional[Path], typer.Option(
    "--class-map", help="JSON/YAML file renaming, merging or dropping classes.", rich_help_panel=DATA,
    show_default=False)]
Strict = Annotated[Optional[bool], typer.Option(
    "--strict/--no-strict", help="treat dataset warnings as errors.", rich_help_panel=DATA, show_default=False)]
SkipMissing = Annotated[Optional[bool], typer.Option(
    "--skip-missing/--no-skip-missing", help="drop images that are missing, don't decode or differ in size from "
    "the JSON (each listed in the manifest) instead of failing.", rich_help_panel=DATA, show_default=False)]
CacheDir = Annotated[Optional[Path], typer.Option(
    "--cache-dir", help="where CVAT/S3 downloads are cached (default: the user's cache folder).",
    rich_help_panel=DATA, show_default=False)]
ClearMLDataset = Annotated[Optional[str], typer.Option(
    "--clearml-dataset", help="register the prepared dataset as a new version of this ClearML Dataset.",
    rich_help_panel=DATA, show_default=False)]
ClearMLDatasetId = Annotated[Optional[str], typer.Option(
    "--clearml-dataset-id", help="train on this ClearML Dataset version (pulled with get_local_copy).",
    rich_help_panel=DATA, show_default=False)]
UploadTo = Annotated[Optional[str], typer.Option(
    "--upload-to", help="s3://bucket/prefix to upload the run's artifacts to.", rich_help_panel=DATA,
    show_default=False)]

# --- model
ModelType = Annotated[Optional[str], typer.Option(
    "--model-type", "-m", help="nano, small, medium, base, large, seg-preview, seg-nano … seg-2xlarge.",
    rich_help_panel=MODEL, show_default=False)]
PretrainWeights = Annotated[Optional[str], typer.Option(
    "--pretrain-weights", help="'default' (published, needs internet), a local .pth path, or 'none'.",
    rich_help_panel=MODEL, show_default=False)]
NumClasses = Annotated[Optional[int], typer.Option(
    "--num-classes", help="number of classes (default: from the dataset).", rich_help_panel=MODEL,
    show_default=False)]

# --- training
Epochs = Annotated[Optional[int], typer.Option("--epochs", "-e", help="training epochs.", rich_help_panel=TRAIN,
                                               show_default=False)]
BatchSize = Annotated[Optional[str], typer.Option("--batch-size", "-b",
                                                  help="images per step per device, or 'auto' (probe the GPU).",
                                                  rich_help_panel=TRAIN, show_default=False)]
GradAccum = Annotated[Optional[int], typer.Option("--grad-accum-steps", help="gradient accumulation steps.",
                                                 rich_help_panel=TRAIN, show_default=False)]
Lr = Annotated[Optional[float], typer.Option("--lr", help="learning rate.", rich_help_panel=TRAIN,
                                             show_default=False)]
Resolution = Annotated[Optional[int], typer.Option(
    "--resolution", help="input size; a multiple of the model's block size (32 for nano…large).",
    rich_help_panel=TRAIN, show_default=False)]
WeightDecay = Annotated[Optional[float], typer.Option("--weight-decay", help="AdamW weight decay.",
                                                      rich_help_panel=TRAIN, show_default=False)]
Device = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:N, mps.",
                                               rich_help_panel=TRAIN, show_default=False)]
UseEma = Annotated[Optional[bool], typer.Option("--ema/--no-ema", help="keep an EMA of the weights.",
                                                rich_help_panel=TRAIN, show_default=False)]
EarlyStopping = Annotated[Optional[bool], typer.Option(
    "--early-stopping/--no-early-stopping", help="stop when validation mAP stops improving.",
    rich_help_panel=TRAIN, show_default=False)]
Patience = Annotated[Optional[int], typer.Option(
    "--early-stopping-patience", help="epochs without improvement before stopping.", rich_help_panel=TRAIN,
    show_default=False)]
CheckpointInterval = Annotated[Optional[int], typer.Option(
    "--checkpoint-interval", help="save a numbered checkpoint every N epochs.", rich_help_panel=TRAIN,
    show_default=False)]
Resume = Annotated[Optional[Path], typer.Option(
    "--resume", help="resume from a last.ckpt written by an interrupted run.", rich_help_panel=TRAIN,
    show_default=False)]
Seed = Annotated[Optional[int], typer.Option("--seed", help="random seed.", rich_help_panel=TRAIN,
                                             show_default=False)]
NumWorkers = Annotated[Optional[int], typer.Option("--num-workers", help="data-loader worker processes.",
                                                   rich_help_panel=TRAIN, show_default=False)]
Devices = Annotated[Optional[str], typer.Option("--devices", help="Lightning devices: a count or 'auto'.",
                                                rich_help_panel=TRAIN, show_default=False)]
Strategy = Annotated[Optional[str], typer.Option("--strategy", help="Lightning strategy: auto, ddp, …",
                                                 rich_help_panel=TRAIN, show_default=False)]
NumNodes = Annotated[Optional[int], typer.Option("--num-nodes", help="nodes for multi-node DDP.",
                                                 rich_help_panel=TRAIN, show_default=False)]
MaxSteps = Annotated[Optional[int], typer.Option("--max-steps", help="stop after N optimiser steps.",
                                                 rich_help_panel=TRAIN, show_default=False)]
# --- throughput: image cache and compiler
Cache = Annotated[Optional[str], typer.Option(
    "--cache", help="decode and resize each image once: ram (default), disk or none.", rich_help_panel=TRAIN,
    show_default=False)]
CacheMaxGb = Annotated[Optional[float], typer.Option(
    "--cache-max-gb", help="RAM the image cache may take; beyond it the cache goes to disk.", rich_help_panel=TRAIN,
    show_default=False)]
Compile = Annotated[Optional[bool], typer.Option(
    "--compile/--no-compile", help="torch.compile the model (CUDA only; the first steps compile).",
    rich_help_panel=TRAIN, show_default=False)]
OutputDir = Annotated[Optional[Path], typer.Option(
    "--output-dir", "-o", help="run outputs: checkpoints, predictions, exports, manifests.",
    rich_help_panel=TRAIN, show_default=False)]
RunName = Annotated[Optional[str], typer.Option(
    "--run-name", help="sub-folder of the output dir (default: a timestamp).", rich_help_panel=TRAIN,
    show_default=False)]

# --- rfdetr 1.11 knobs (issue 10): names follow rfdetr's TrainConfig / ModelConfig
Augment = Annotated[Optional[str], typer.Option(
    "--augment", help="augmentation preset: none, conservative, aggressive, aerial, industrial.",
    rich_help_panel=TRAIN, show_default=False)]
AugmentationBackend = Annotated[Optional[str], typer.Option(
    "--augmentation-backend", help="cpu, auto, torchvision, albumentations or kornia.", rich_help_panel=TRAIN,
    show_default=False)]
MultiScale = Annotated[Optional[str], typer.Option(
    "--multi-scale", help="multi-scale training: off, per-batch or per-sample.", rich_help_panel=TRAIN,
    show_default=False)]
FreezeEncoder = Annotated[Optional[bool], typer.Option(
    "--freeze-encoder/--no-freeze-encoder", help="keep the backbone fixed (small datasets, small GPUs).",
    rich_help_panel=MODEL, show_default=False)]
Lora = Annotated[Optional[bool], typer.Option(
    "--lora/--no-lora", help="LoRA adapters on the backbone (extra: pip install 'rfdetr-trainer[lora]').",
    rich_help_panel=MODEL, show_default=False)]
LrScheduler = Annotated[Optional[str], typer.Option(
    "--lr-scheduler", help="learning-rate schedule: step or cosine.", rich_help_panel=TRAIN, show_default=False)]
WarmupEpochs = Annotated[Optional[float], typer.Option(
    "--warmup-epochs", help="linear learning-rate warm-up, in epochs.", rich_help_panel=TRAIN, show_default=False)]
EvalInterval = Annotated[Optional[int], typer.Option(
    "--eval-interval", help="validate every N epochs (the last always validates).", rich_help_panel=TRAIN,
    show_default=False)]
NumQueries = Annotated[Optional[int], typer.Option(
    "--num-queries", help="object queries (default: the model's; more for dense scenes).", rich_help_panel=MODEL,
    show_default=False)]
EvalMaxDets = Annotated[Optional[int], typer.Option(
    "--eval-max-dets", help="detections per image kept for COCO evaluation.", rich_help_panel=TRAIN,
    show_default=False)]
SaveDatasetGrids = Annotated[Optional[bool], typer.Option(
    "--save-dataset-grids/--no-save-dataset-grids", help="render sample grids of the train/valid data.",
    rich_help_panel=TRAIN, show_default=False)]
MaxTime = Annotated[Optional[str], typer.Option(
    "--max-time", help="time budget: 90m, 2h, 1.5h or DD:HH:MM:SS; stops cleanly with checkpoints.",
    rich_help_panel=TRAIN, show_default=False)]
InitFrom = Annotated[Optional[Path], typer.Option(
    "--init-from", help="fine-tune from a checkpoint this tool wrote, keeping its classes (head mapped by name).",
    rich_help_panel=MODEL, show_default=False)]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="print the rfdetr TrainConfig and ModelConfig that would be used, and exit.")]

# --- tracking
ClearML = Annotated[Optional[bool], typer.Option("--clearml/--no-clearml", help="track the run in ClearML.",
                                                 rich_help_panel=TRACK, show_default=False)]
ProjectName = Annotated[Optional[str], typer.Option("--project-name", help="ClearML project.",
                                                    rich_help_panel=TRACK, show_default=False)]
TaskName = Annotated[Optional[str], typer.Option("--task-name", help="ClearML task name.", rich_help_panel=TRACK,
                                                 show_default=False)]
Tags = Annotated[Optional[list[str]], typer.Option("--tags", help="ClearML tags: --tags production v1.0.",
                                                   rich_help_panel=TRACK, show_default=False)]
ClearMLOffline = Annotated[Optional[bool], typer.Option(
    "--clearml-offline/--no-clearml-offline", help="record an offline ClearML session.", rich_help_panel=TRACK,
    show_default=False)]
ClearMLRequired = Annotated[Optional[bool], typer.Option(
    "--clearml-required/--no-clearml-required", help="fail when ClearML can't be reached.",
    rich_help_panel=TRACK, show_default=False)]
Remote = Annotated[Optional[str], typer.Option("--remote", help="enqueue the run on this clearml-agent queue.",
                                               rich_help_panel=TRACK, show_default=False)]
TensorBoard = Annotated[Optional[bool], typer.Option(
    "--tensorboard/--no-tensorboard", help="write TensorBoard logs.", rich_help_panel=TRACK, show_default=False)]

# --- prediction
Confidence = Annotated[Optional[float], typer.Option(
    "--confidence-threshold", "--conf", help="keep detections scoring at least this.", rich_help_panel=EVAL,
    show_default=False)]
Iou = Annotated[Optional[float], typer.Option("--iou-threshold", help="IoU threshold of class-agnostic NMS.",
                                              rich_help_panel=EVAL, show_default=False)]
InferenceBatchSize = Annotated[Optional[int], typer.Option(
    "--batch-size", "-b", help="images per forward pass.", rich_help_panel=EVAL, show_default=False)]
ModelFile = Annotated[Optional[Path], typer.Option(
    "--model", help="an exported model.onnx or model.torchscript to run instead of a checkpoint.",
    rich_help_panel=EVAL, show_default=False)]

# --- export
ExportFormat = Annotated[Optional[list[str]], typer.Option(
    "--export-format", "--format", help="onnx and/or torchscript: --export-format onnx torchscript.",
    rich_help_panel=EXPORT, show_default=False)]
Half = Annotated[Optional[bool], typer.Option("--half/--no-half", help="export in float16.",
                                              rich_help_panel=EXPORT, show_default=False)]
Simplify = Annotated[Optional[bool], typer.Option("--simplify/--no-simplify", help="simplify the ONNX graph.",
                                                  rich_help_panel=EXPORT, show_default=False)]
Opset = Annotated[Optional[int], typer.Option("--opset", help="ONNX opset.", rich_help_panel=EXPORT,
                                              show_default=False)]
ExportEvaluate = Annotated[Optional[bool], typer.Option(
    "--evaluate/--no-evaluate", help="evaluate each exported file on the dataset and compare mAP with PyTorch.",
    rich_help_panel=EXPORT, show_default=False)]
DynamicBatch = Annotated[Optional[bool], typer.Option(
    "--dynamic-batch/--static-batch", help="make the batch dimension dynamic.", rich_help_panel=EXPORT,
    show_default=False)]

#: parameter name -> (settings key, flag as the user types it)
KEYS: dict[str, tuple[str, str]] = {
    "dataset_dir": ("data.local.dataset_dirs", "--dataset-dir"),
    "data_dir": ("data.output_dir", "--data-dir"),
    "source_type": ("data.source_type", "--source-type"),
    "cvat_task_ids": ("data.cvat.task_ids", "--cvat-task-ids"),
    "cvat_project_ids": ("data.cvat.project_ids", "--cvat-project-ids"),
    "cvat_subsets": ("data.cvat.subsets", "--cvat-subsets"),
    "cvat_downloader": ("data.cvat.downloader", "--cvat-downloader"),
    "cvat_job_stage": ("data.cvat.job_stages", "--cvat-job-stage"),
    "cvat_job_state": ("data.cvat.job_states", "--cvat-job-state"),
    "gt_to_test": ("data.cvat.gt_to_test", "--gt-to-test"),
    "minio_bucket": ("data.minio.bucket", "--minio-bucket"),
    "minio_prefix": ("data.minio.prefixes", "--minio-prefix"),
    "upload_to": ("data.minio.upload_to", "--upload-to"),
    "clearml_dataset": ("data.clearml_dataset", "--clearml-dataset"),
    "clearml_dataset_id": ("data.clearml_dataset_id", "--clearml-dataset-id"),
    "split_seed": ("data.split.seed", "--split-seed"),
    "group_by_source": ("data.split.group_by_source", "--group-by-source"),
    "class_map": ("data.class_map", "--class-map"),
    "strict": ("data.strict", "--strict"),
    "skip_missing": ("data.skip_missing", "--skip-missing"),
    "cache_dir": ("data.cache_dir", "--cache-dir"),
    "model_type": ("model.model_type", "--model-type"),
    "pretrain_weights": ("model.pretrain_weights", "--pretrain-weights"),
    "num_classes": ("model.num_classes", "--num-classes"),
    "epochs": ("training.epochs", "--epochs"),
    "batch_size": ("training.batch_size", "--batch-size"),
    "grad_accum_steps": ("training.grad_accum_steps", "--grad-accum-steps"),
    "lr": ("training.lr", "--lr"),
    "resolution": ("training.resolution", "--resolution"),
    "weight_decay": ("training.weight_decay", "--weight-decay"),
    "device": ("training.device", "--device"),
    "ema": ("training.use_ema", "--ema"),
    "early_stopping": ("training.early_stopping", "--early-stopping"),
    "early_stopping_patience": ("training.early_stopping_patience", "--early-stopping-patience"),
    "checkpoint_interval": ("training.checkpoint_interval", "--checkpoint-interval"),
    "resume": ("training.resume", "--resume"),
    "seed": ("training.seed", "--seed"),
    "num_workers": ("training.num_workers", "--num-workers"),
    "devices": ("training.devices", "--devices"),
    "strategy": ("training.strategy", "--strategy"),
    "num_nodes": ("training.num_nodes", "--num-nodes"),
    "max_steps": ("training.max_steps", "--max-steps"),
    "cache": ("training.cache", "--cache"),
    "cache_max_gb": ("training.cache_max_gb", "--cache-max-gb"),
    "compile": ("training.compile", "--compile"),
    "output_dir": ("experiment.output_dir", "--output-dir"),
    "run_name": ("experiment.run_name", "--run-name"),
    "clearml": ("experiment.clearml.enabled", "--clearml"),
    "project_name": ("experiment.clearml.project_name", "--project-name"),
    "task_name": ("experiment.clearml.task_name", "--task-name"),
    "tags": ("experiment.clearml.tags", "--tags"),
    "clearml_offline": ("experiment.clearml.offline", "--clearml-offline"),
    "clearml_required": ("experiment.clearml.required", "--clearml-required"),
    "remote": ("experiment.clearml.remote_queue", "--remote"),
    "tensorboard": ("experiment.logging.tensorboard", "--tensorboard"),
    "confidence_threshold": ("validation.confidence_threshold", "--confidence-threshold"),
    "iou_threshold": ("validation.iou_threshold", "--iou-threshold"),
    "export_format": ("export.format", "--export-format"),
    "half": ("export.half", "--half"),
    "simplify": ("export.simplify", "--simplify"),
    "opset": ("export.opset", "--opset"),
    "dynamic_batch": ("export.dynamic_batch", "--dynamic-batch"),
    "inference_batch_size": ("validation.batch_size", "--batch-size"),
    "export_evaluate": ("export.evaluate", "--evaluate"),
    # rfdetr 1.11 knobs (issue 10)
    "augment": ("training.augment", "--augment"),
    "augmentation_backend": ("training.augmentation_backend", "--augmentation-backend"),
    "multi_scale": ("training.multi_scale", "--multi-scale"),
    "freeze_encoder": ("model.freeze_encoder", "--freeze-encoder"),
    "lora": ("model.backbone_lora", "--lora"),
    "lr_scheduler": ("training.lr_scheduler", "--lr-scheduler"),
    "warmup_epochs": ("training.warmup_epochs", "--warmup-epochs"),
    "eval_interval": ("training.eval_interval", "--eval-interval"),
    "num_queries": ("model.num_queries", "--num-queries"),
    "eval_max_dets": ("training.eval_max_dets", "--eval-max-dets"),
    "save_dataset_grids": ("training.save_dataset_grids", "--save-dataset-grids"),
    "max_time": ("training.max_time", "--max-time"),
    "init_from": ("model.init_from", "--init-from"),
}

#: options that take several values after one flag (``--tags a b``); expanded by the root group.
VARIADIC = frozenset(
    {"--cvat-task-ids", "--cvat-project-ids", "--cvat-subsets", "--minio-prefix", "--tags", "--export-format",
     "--format", "--dataset-dir", "-d", "--cvat-job-stage", "--cvat-job-state"}
)


def overrides(params: dict[str, Any]) -> dict[str, Any]:
    """Dotted settings keys for the parameters the user passed (those not ``None`` or empty)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name not in KEYS or value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        if name == "split":
            continue
        out[KEYS[name][0]] = list(value) if isinstance(value, tuple) else value
    split = params.get("split")
    if split:
        out["data.split.mode"] = "ratio"
        out["data.split.ratios"] = list(split)
    return out


def flag_names() -> dict[str, str]:
    """Settings key -> flag, so a bad flag value is reported under the flag's name."""
    names = {key: flag for key, flag in KEYS.values()}
    names["data.split.ratios"] = "--split"
    names["data.split.mode"] = "--split"  # --split sets both; there is no --mode flag to name
    return names
