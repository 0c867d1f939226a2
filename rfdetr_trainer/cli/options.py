"""Shared option aliases: each flag's help text and settings key are written once, here.

Every option defaults to ``None`` so only flags the user actually passed override lower sources. Each settings
flag is built by :func:`option`, which registers its key: ``KEYS`` (command parameter name -> settings key and
flag) and ``VARIADIC`` are derived from the aliases, and :func:`overrides` turns a command's ``locals()`` into
the override dict for :func:`rfdetr_trainer.settings.load_settings`.
"""

from __future__ import annotations

import typing
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

#: parameter name -> (settings key, flag as the user types it); filled by :func:`option`.
KEYS: dict[str, tuple[str, str]] = {}
#: parameter name -> its alias, so a test can check that commands name each parameter as registered.
ALIASES: dict[str, Any] = {}
_variadic: set[str] = set()


def option(key: str, annotation: Any, *flags: str, panel: str, help: str, param: str | None = None) -> Any:
    """An option alias for a settings key: ``Annotated[annotation, typer.Option(*flags, ...)]``, registered.

    Args:
        key: the dotted settings key the flag sets (``training.epochs``).
        annotation: the parameter type, ``Optional`` since the default is None; a list takes several values
            after one flag (``--tags a b``).
        flags: as ``typer.Option`` takes them: the long flag first (``--ema/--no-ema``), then any other name.
        panel: the ``--help`` group.
        help: the help text.
        param: the name commands give the parameter, when it is not the long flag's (``--evaluate`` is
            ``export_evaluate``; prediction's ``--batch-size`` is ``inference_batch_size``, apart from training's).
    """
    flag = flags[0].split("/")[0]
    name = param or flag.lstrip("-").replace("-", "_")
    if name in KEYS:
        raise ValueError(f"option {name} ({flag}) is registered twice")
    KEYS[name] = (key, flag)
    if any(typing.get_origin(t) is list for t in (annotation, *typing.get_args(annotation))):
        _variadic.update(f.split("/")[0] for f in flags)
    ALIASES[name] = Annotated[annotation, typer.Option(*flags, help=help, rich_help_panel=panel, show_default=False)]
    return ALIASES[name]


ConfigFile = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="JSON or YAML config file (below env and flags in precedence).",
                 show_default=False),
]
EnvFile = Annotated[Path, typer.Option("--env-file", help="dotenv file with credentials and settings.")]
JsonOut = Annotated[bool, typer.Option("--json", help="print a JSON result on stdout.")]

# --- data
DatasetDir = option("data.local.dataset_dirs", Optional[list[Path]], "--dataset-dir", "-d", panel=DATA,
                    help="local dataset folder (rfdetr, CVAT or plain COCO layout); repeatable.")
DataOutputDir = option("data.output_dir", Optional[Path], "--data-dir", panel=DATA,
                       help="where the prepared train/valid/test dataset is written.")
SourceType = option("data.source_type", Optional[str], "--source-type", panel=DATA,
                    help="data source: auto, local, cvat, minio.")
CvatTaskIds = option("data.cvat.task_ids", Optional[list[int]], "--cvat-task-ids", panel=DATA,
                     help="CVAT task ids: --cvat-task-ids 1 2 3.")
CvatProjectIds = option("data.cvat.project_ids", Optional[list[int]], "--cvat-project-ids", panel=DATA,
                        help="CVAT project ids.")
CvatSubsets = option("data.cvat.subsets", Optional[list[str]], "--cvat-subsets", panel=DATA,
                     help="project subsets to keep, e.g. Train Validation.")
CvatDownloader = option("data.cvat.downloader", Optional[str], "--cvat-downloader", panel=DATA,
                        help="auto, sdk, http or http-legacy.")
CvatJobStage = option("data.cvat.job_stages", Optional[list[str]], "--cvat-job-stage", panel=DATA,
                      help="keep frames of jobs in these stages: annotation validation acceptance.")
CvatJobState = option("data.cvat.job_states", Optional[list[str]], "--cvat-job-state", panel=DATA,
                      help="keep frames of jobs in these states: new in-progress completed rejected.")
GtToTest = option("data.cvat.gt_to_test", Optional[bool], "--gt-to-test/--no-gt-to-test", panel=DATA,
                  help="frames of CVAT ground-truth jobs go to the test split (default on).")
MinioBucket = option("data.minio.bucket", Optional[str], "--minio-bucket", panel=DATA,
                     help="S3/MinIO bucket holding datasets.")
MinioPrefix = option("data.minio.prefixes", Optional[list[str]], "--minio-prefix", panel=DATA,
                     help="key prefixes to fetch; several allowed.")
# Not an option(): --refresh sets two keys, data.cvat.refresh and data.minio.refresh (see overrides()).
Refresh = Annotated[Optional[bool], typer.Option(
    "--refresh/--no-refresh", help="fetch again even if the cached copy is current.", rich_help_panel=DATA,
    show_default=False)]
Split = Annotated[Optional[tuple[float, float, float]], typer.Option(
    "--split", help="re-split by ratio: --split 0.8 0.1 0.1 (default: keep the sources' subsets).",
    rich_help_panel=DATA, show_default=False)]
SplitSeed = option("data.split.seed", Optional[int], "--split-seed", panel=DATA, help="seed of the ratio split.")
GroupBySource = option("data.split.group_by_source", Optional[bool], "--group-by-source/--no-group-by-source",
                       panel=DATA, help="keep each source's images in one split.")
ClassMap = option("data.class_map", Optional[Path], "--class-map", panel=DATA,
                  help="JSON/YAML file renaming, merging or dropping classes.")
Strict = option("data.strict", Optional[bool], "--strict/--no-strict", panel=DATA,
                help="treat dataset warnings as errors.")
SkipMissing = option("data.skip_missing", Optional[bool], "--skip-missing/--no-skip-missing", panel=DATA,
                     help="drop images that are missing, don't decode or differ in size from the JSON (each listed in "
                     "the manifest) instead of failing.")
CacheDir = option("data.cache_dir", Optional[Path], "--cache-dir", panel=DATA,
                  help="where CVAT/S3 downloads are cached (default: the user's cache folder).")
ClearMLDataset = option("data.clearml_dataset", Optional[str], "--clearml-dataset", panel=DATA,
                        help="register the prepared dataset as a new version of this ClearML Dataset.")
ClearMLDatasetId = option("data.clearml_dataset_id", Optional[str], "--clearml-dataset-id", panel=DATA,
                          help="train on this ClearML Dataset version (pulled with get_local_copy).")
UploadTo = option("data.minio.upload_to", Optional[str], "--upload-to", panel=DATA,
                  help="s3://bucket/prefix to upload the run's artifacts to.")

# --- model
ModelType = option("model.model_type", Optional[str], "--model-type", "-m", panel=MODEL,
                   help="nano, small, medium, base, large, seg-preview, seg-nano … seg-2xlarge, keypoint-preview.")
PretrainWeights = option("model.pretrain_weights", Optional[str], "--pretrain-weights", panel=MODEL,
                         help="'default' (published, needs internet), a local .pth path, or 'none'.")
NumClasses = option("model.num_classes", Optional[int], "--num-classes", panel=MODEL,
                    help="number of classes (default: from the dataset).")

# --- training
Epochs = option("training.epochs", Optional[int], "--epochs", "-e", panel=TRAIN, help="training epochs.")
BatchSize = option("training.batch_size", Optional[str], "--batch-size", "-b", panel=TRAIN,
                   help="images per step per device, or 'auto' (probe the GPU).")
GradAccum = option("training.grad_accum_steps", Optional[int], "--grad-accum-steps", panel=TRAIN,
                   help="gradient accumulation steps.")
Lr = option("training.lr", Optional[float], "--lr", panel=TRAIN, help="learning rate.")
Resolution = option("training.resolution", Optional[int], "--resolution", panel=TRAIN,
                    help="input size; a multiple of the model's block size (32 for nano…large).")
WeightDecay = option("training.weight_decay", Optional[float], "--weight-decay", panel=TRAIN,
                     help="AdamW weight decay.")
Device = option("training.device", Optional[str], "--device", panel=TRAIN, help="auto, cpu, cuda, cuda:N, mps.")
UseEma = option("training.use_ema", Optional[bool], "--ema/--no-ema", panel=TRAIN, help="keep an EMA of the weights.")
EarlyStopping = option("training.early_stopping", Optional[bool], "--early-stopping/--no-early-stopping", panel=TRAIN,
                       help="stop when validation mAP stops improving.")
Patience = option("training.early_stopping_patience", Optional[int], "--early-stopping-patience", panel=TRAIN,
                  help="epochs without improvement before stopping.")
CheckpointInterval = option("training.checkpoint_interval", Optional[int], "--checkpoint-interval", panel=TRAIN,
                            help="save a numbered checkpoint every N epochs.")
Resume = option("training.resume", Optional[Path], "--resume", panel=TRAIN,
                help="resume from a last.ckpt written by an interrupted run.")
Seed = option("training.seed", Optional[int], "--seed", panel=TRAIN, help="random seed.")
NumWorkers = option("training.num_workers", Optional[int], "--num-workers", panel=TRAIN,
                    help="data-loader worker processes.")
Devices = option("training.devices", Optional[str], "--devices", panel=TRAIN,
                 help="Lightning devices: a count or 'auto'.")
Strategy = option("training.strategy", Optional[str], "--strategy", panel=TRAIN,
                  help="Lightning strategy: auto, ddp, …")
NumNodes = option("training.num_nodes", Optional[int], "--num-nodes", panel=TRAIN, help="nodes for multi-node DDP.")
MaxSteps = option("training.max_steps", Optional[int], "--max-steps", panel=TRAIN, help="stop after N optimiser steps.")
# --- throughput: image cache and compiler
Cache = option("training.cache", Optional[str], "--cache", panel=TRAIN,
               help="decode and resize each image once: ram, disk or none (default).")
CacheMaxGb = option("training.cache_max_gb", Optional[float], "--cache-max-gb", panel=TRAIN,
                    help="RAM the image cache may take; beyond it the cache goes to disk.")
Compile = option("training.compile", Optional[bool], "--compile/--no-compile", panel=TRAIN,
                 help="torch.compile the model (CUDA only; the first steps compile).")
OutputDir = option("experiment.output_dir", Optional[Path], "--output-dir", "-o", panel=TRAIN,
                   help="run outputs: checkpoints, predictions, exports, manifests.")
RunName = option("experiment.run_name", Optional[str], "--run-name", panel=TRAIN,
                 help="sub-folder of the output dir (default: a timestamp).")

# --- rfdetr 1.11 knobs (issue 10): names follow rfdetr's TrainConfig / ModelConfig
Augment = option("training.augment", Optional[str], "--augment", panel=TRAIN,
                 help="augmentation preset: none, conservative, aggressive, aerial, industrial.")
AugmentationBackend = option("training.augmentation_backend", Optional[str], "--augmentation-backend", panel=TRAIN,
                             help="cpu, auto, torchvision, albumentations or kornia.")
MultiScale = option("training.multi_scale", Optional[str], "--multi-scale", panel=TRAIN,
                    help="multi-scale training: off, per-batch or per-sample.")
FreezeEncoder = option("model.freeze_encoder", Optional[bool], "--freeze-encoder/--no-freeze-encoder", panel=MODEL,
                       help="keep the backbone fixed (small datasets, small GPUs).")
Lora = option("model.backbone_lora", Optional[bool], "--lora/--no-lora", panel=MODEL,
              help="LoRA adapters on the backbone (extra: pip install 'rfdetr-trainer\\[lora]').")
LrScheduler = option("training.lr_scheduler", Optional[str], "--lr-scheduler", panel=TRAIN,
                     help="learning-rate schedule: step or cosine.")
WarmupEpochs = option("training.warmup_epochs", Optional[float], "--warmup-epochs", panel=TRAIN,
                      help="linear learning-rate warm-up, in epochs.")
EvalInterval = option("training.eval_interval", Optional[int], "--eval-interval", panel=TRAIN,
                      help="validate every N epochs (the last always validates).")
NumQueries = option("model.num_queries", Optional[int], "--num-queries", panel=MODEL,
                    help="object queries (default: the model's; more for dense scenes).")
EvalMaxDets = option("training.eval_max_dets", Optional[int], "--eval-max-dets", panel=TRAIN,
                     help="detections per image kept for COCO evaluation.")
SaveDatasetGrids = option("training.save_dataset_grids", Optional[bool], "--save-dataset-grids/--no-save-dataset-grids",
                          panel=TRAIN, help="render sample grids of the train/valid data.")
MaxTime = option("training.max_time", Optional[str], "--max-time", panel=TRAIN,
                 help="time budget: 90m, 2h, 1.5h or DD:HH:MM:SS; stops cleanly with checkpoints.")
InitFrom = option("model.init_from", Optional[Path], "--init-from", panel=MODEL,
                  help="fine-tune from a checkpoint this tool wrote, keeping its classes (head mapped by name).")
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="print the rfdetr TrainConfig and ModelConfig that would be used, and exit.")]

# --- tracking
ClearML = option("experiment.clearml.enabled", Optional[bool], "--clearml/--no-clearml", panel=TRACK,
                 help="track the run in ClearML.")
ProjectName = option("experiment.clearml.project_name", Optional[str], "--project-name", panel=TRACK,
                     help="ClearML project.")
TaskName = option("experiment.clearml.task_name", Optional[str], "--task-name", panel=TRACK, help="ClearML task name.")
Tags = option("experiment.clearml.tags", Optional[list[str]], "--tags", panel=TRACK,
              help="ClearML tags: --tags production v1.0.")
ClearMLOffline = option("experiment.clearml.offline", Optional[bool], "--clearml-offline/--no-clearml-offline",
                        panel=TRACK, help="record an offline ClearML session.")
ClearMLRequired = option("experiment.clearml.required", Optional[bool], "--clearml-required/--no-clearml-required",
                         panel=TRACK, help="fail when ClearML can't be reached.")
Remote = option("experiment.clearml.remote_queue", Optional[str], "--remote", panel=TRACK,
                help="enqueue the run on this clearml-agent queue.")
TensorBoard = option("experiment.logging.tensorboard", Optional[bool], "--tensorboard/--no-tensorboard", panel=TRACK,
                     help="write TensorBoard logs.")

# --- prediction
Confidence = option("validation.confidence_threshold", Optional[float], "--confidence-threshold", "--conf", panel=EVAL,
                    help="keep detections scoring at least this.")
Iou = option("validation.iou_threshold", Optional[float], "--iou-threshold", panel=EVAL,
             help="IoU threshold of class-agnostic NMS.")
InferenceBatchSize = option("validation.batch_size", Optional[int], "--batch-size", "-b",
                            panel=EVAL, param="inference_batch_size", help="images per forward pass.")
ModelFile = Annotated[Optional[Path], typer.Option(
    "--model", help="an exported model.onnx or model.torchscript to run instead of a checkpoint.",
    rich_help_panel=EVAL, show_default=False)]

# --- export
ExportFormat = option("export.format", Optional[list[str]], "--export-format", "--format", panel=EXPORT,
                      help="onnx and/or torchscript: --export-format onnx torchscript.")
Half = option("export.half", Optional[bool], "--half/--no-half", panel=EXPORT, help="export in float16.")
Simplify = option("export.simplify", Optional[bool], "--simplify/--no-simplify", panel=EXPORT,
                  help="simplify the ONNX graph.")
Opset = option("export.opset", Optional[int], "--opset", panel=EXPORT, help="ONNX opset.")
FinalEvaluation = option("validation.after_training", Optional[bool], "--final-eval/--no-final-eval", panel=EVAL,
                         help="evaluate the best checkpoint on the valid split when training ends (default on).")
ExportEvaluate = option("export.evaluate", Optional[bool], "--evaluate/--no-evaluate", panel=EXPORT,
                        param="export_evaluate",
                        help="evaluate each exported file on the dataset and compare mAP with PyTorch.")
DynamicBatch = option("export.dynamic_batch", Optional[bool], "--dynamic-batch/--static-batch", panel=EXPORT,
                      help="make the batch dimension dynamic.")

#: options that take several values after one flag (``--tags a b``); expanded by the root group.
VARIADIC = frozenset(_variadic)


def overrides(params: dict[str, Any]) -> dict[str, Any]:
    """Dotted settings keys for the parameters the user passed (those not ``None`` or empty)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name not in KEYS or value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        if name == "split":
            continue
        out[KEYS[name][0]] = list(value) if isinstance(value, tuple) else value
    refresh = params.get("refresh")
    if refresh is not None:  # one flag for both cached sources
        out["data.cvat.refresh"] = out["data.minio.refresh"] = refresh
    split = params.get("split")
    if split:
        out["data.split.mode"] = "ratio"
        out["data.split.ratios"] = list(split)
    return out


def flag_names() -> dict[str, str]:
    """Settings key -> flag, so a bad flag value is reported under the flag's name."""
    names = {key: flag for key, flag in KEYS.values()}
    names["data.split.ratios"] = "--split"
    names["data.cvat.refresh"] = names["data.minio.refresh"] = "--refresh"
    names["data.split.mode"] = "--split"  # --split sets both; there is no --mode flag to name
    return names
