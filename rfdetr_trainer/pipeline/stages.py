"""Single stages as the CLI runs them alone: settings in, a service's result out.

Each function resolves the paths a stage needs from the settings (and, for a checkpoint, from the run folder it
sits in) and calls the stage's service; ``runner.run`` chains the same services.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfdetr_trainer.distributed import is_rank_zero
from rfdetr_trainer.pipeline.context import (
    Enqueued,
    ManifestBook,
    RunContext,
    RunPaths,
    check_writable,
    load_manifest,
    open_run,
    sample_image,
)
from rfdetr_trainer.settings import Settings

if TYPE_CHECKING:
    from rfdetr_trainer.pipeline.tracking import Tracker
    from rfdetr_trainer.schemas import TrainingConfig
    from rfdetr_trainer.services.evaluate import EvaluateResult
    from rfdetr_trainer.services.export import ExportResult
    from rfdetr_trainer.services.fetch import FetchResult
    from rfdetr_trainer.services.predict import PredictResult
    from rfdetr_trainer.services.train import TrainResult


def fetch_stage(settings: Settings) -> FetchResult:
    """Fetch and lay out the configured sources (rank 0 only; other ranks get the path rank 0 prepared)."""
    from rfdetr_trainer.integrations.progress import stderr_progress
    from rfdetr_trainer.services.fetch import FetchResult, fetch, prepared_dir

    if not is_rank_zero():
        return FetchResult(prepared_dir(settings.data), [])
    with stderr_progress() as progress:
        return fetch(settings.data, progress=progress)


def train_stage(settings: Settings) -> TrainResult | Enqueued | None:
    """Fetch (local folders are used in place) and train with tracking, then evaluate on the valid split.

    Each step is recorded in ``<run>/run_manifest.json`` (``run``'s schema; rank 0 writes it), a failed one with
    its error.

    Returns:
        The TrainResult; the queued task when the run was sent to a clearml-agent queue (``--remote``); None on
        DDP ranks other than 0.
    """
    # A failed training leaves no run folder behind, unless it wrote a checkpoint worth resuming from.
    with open_run(settings, keep=("*.ckpt", "*.pth")) as ctx:
        if ctx.enqueued:
            return ctx.enqueued
        book = ManifestBook.start(ctx, is_rank_zero())
        try:
            return _train_steps(ctx, book)
        except BaseException as exc:
            if book.rank_zero:
                book.fail(exc)
            raise


def fetch_recorded(ctx: RunContext, book: ManifestBook) -> FetchResult:
    """Fetch the run's sources, record the ``fetch`` stage and give the tracker the dataset. Shared by ``train``
    and ``run``."""
    fetched = fetch_stage(ctx.settings)
    book.record("fetch", fetched.to_dict(), dataset=fetched.dataset_dir, dataset_manifest=fetched.manifest_path)
    ctx.tracker.log_dataset(fetched.manifest_path, fetched.dataset_dir)
    return fetched


def train_recorded(ctx: RunContext, book: ManifestBook, fetched: FetchResult,
                   training: TrainingConfig) -> TrainResult | None:
    """Train on the fetched dataset with the run's callbacks; on rank 0 record the ``train`` stage and give the
    tracker the class mapping and the best checkpoint. None off rank 0. Shared by ``train`` and ``run``."""
    from rfdetr_trainer.services.train import train

    settings, tracker = ctx.settings, ctx.tracker
    result = train(settings.model, training, fetched.dataset_dir, ctx.paths,
                   tensorboard=settings.experiment.logging.tensorboard, strict=settings.data.strict,
                   validate=False, extra_callbacks=tracker.callbacks, notes=fetched.provenance())
    if not book.rank_zero:
        return None
    book.record("train", result.to_dict(), best_checkpoint=result.best_checkpoint,
                checkpoints=result.checkpoints_dir, tensorboard=result.tensorboard_dir, metrics=result.metrics_path)
    tracker.log_class_mapping(result.init_from)
    tracker.log_model(result.best_checkpoint, name="best", class_names=result.class_names,
                      metrics=result.final_metrics)
    return result


def evaluate_recorded(ctx: RunContext, book: ManifestBook, model: Any, dataset_dir: Path,
                      split: str) -> EvaluateResult:
    """:func:`final_evaluation` of ``model`` on ``split``, recorded as the ``evaluate`` stage. Shared by ``train``
    and ``run``."""
    evaluated = final_evaluation(ctx.settings, model, dataset_dir, ctx.paths, split, ctx.tracker)
    book.record("evaluate", evaluated.to_dict(), evaluation=evaluated.output_dir,
                evaluation_metrics=evaluated.metrics_path)
    return evaluated


def _train_steps(ctx: RunContext, book: ManifestBook) -> TrainResult | None:
    from rfdetr_trainer.services.report import REPORT_NAME

    fetched = fetch_recorded(ctx, book)
    book.current = "train"
    result = train_recorded(ctx, book, fetched, ctx.settings.training)
    if result is None:
        return None
    if ctx.settings.validation.after_training:
        book.current = "evaluate"
        evaluate_recorded(ctx, book, result.best_checkpoint, fetched.dataset_dir, "valid")
        report = ctx.paths.root / REPORT_NAME  # final_evaluation rebuilt it
        if report.is_file():
            book.current = "report"
            book.record("report", {}, report=report)
    book.finish()
    return result


def train_summary(result: TrainResult) -> dict[str, Any]:
    """``train``'s printed result: the TrainResult, its run manifest and the final evaluation's summary."""
    manifest_path = RunPaths(Path(result.checkpoints_dir).parent).manifest
    summary = result.to_dict()
    if manifest_path.is_file():
        summary["manifest_path"] = str(manifest_path)
        evaluated = load_manifest(manifest_path).get("stages", {}).get("evaluate")
        if evaluated:
            summary["evaluation"] = {k: v for k, v in evaluated.items() if k != "status"}
    return summary


def train_dry_run(settings: Settings) -> dict[str, Any]:
    """What ``train`` would hand rfdetr (its ModelConfig and TrainConfig), without fetching or training."""
    from rfdetr_trainer.services.fetch import prepared_dir
    from rfdetr_trainer.services.train import resolved_configs

    paths = RunPaths(Path(settings.experiment.output_dir) / (settings.experiment.run_name or "<run>"))  # not created
    return resolved_configs(settings.model, settings.training, prepared_dir(settings.data), paths)


def run_folder_of(checkpoint: Path) -> RunPaths | None:
    """The run folder a checkpoint was written in (``<run>/checkpoints/<file>``), if it is one."""
    checkpoint = Path(checkpoint)
    parent = checkpoint if checkpoint.is_dir() else checkpoint.parent
    return RunPaths(parent.parent) if parent.name == "checkpoints" else None


def default_output(settings: Settings, checkpoint: Path, leaf: str) -> Path:
    """``<run>/<leaf>`` beside the checkpoint's run, else ``<experiment.output_dir>/<leaf>``."""
    run = run_folder_of(checkpoint)
    return (run.root if run else Path(settings.experiment.output_dir)) / leaf


def predict_stage(settings: Settings, checkpoint: Path | None, source: Path, output: Path | None, *,
                  model_file: Path | None = None, thresholds: str | None = None) -> PredictResult:
    """Load a checkpoint (or an exported ``--model`` file) and predict on ``source``.

    ``thresholds``: ``auto`` (per-class confidences from the run's ``thresholds.json``, else the exported
    file's metadata) or the path of a ``thresholds.json``; None keeps the single confidence threshold.
    """
    from rfdetr_trainer.integrations.rfdetr.inference import load_backend
    from rfdetr_trainer.services.predict import predict

    model_path = model_source(checkpoint, model_file)
    split = None
    if (Path(source) / "train" / "_annotations.coco.json").is_file():
        split, _ = sample_image(Path(source))  # a dataset root: its test split, else valid
    anchor = model_path.parent.parent / "checkpoints" / model_path.name if model_path.parent.name == "export" \
        else model_path
    output = Path(output or default_output(settings, anchor, "predictions"))
    check_predict(Path(source), split, output, model_path)  # before the model loads (seconds)
    backend = load_backend(model_path, device=settings.training.device)
    per_class = resolve_thresholds(thresholds, anchor, backend) if thresholds else None
    return predict(backend, Path(source), output, settings.validation, split=split, thresholds=per_class)


def resolve_thresholds(spec: str, anchor: Path, backend: Any) -> dict[str, float]:
    """Per-class confidences for ``predict --thresholds`` (``auto`` or a thresholds.json path)."""
    from rfdetr_trainer.errors import ConfigError
    from rfdetr_trainer.evaluation.files import read_thresholds

    if spec != "auto":
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"--thresholds {spec}: no such file", hint="pass auto or a thresholds.json")
        try:
            return read_thresholds(path)
        except (OSError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{path}: not a thresholds.json ({exc})") from None
    run = run_folder_of(anchor)
    if run is not None:
        for split in ("test", "valid"):
            path = run.root / "evaluation" / split / "thresholds.json"
            if path.is_file():
                return read_thresholds(path)
    if backend.thresholds:
        return {str(k): float(v) for k, v in backend.thresholds.items()}
    raise ConfigError("--thresholds auto: no thresholds.json in the run and none in the model's metadata",
                      hint="run rfdetr-trainer evaluate first, or pass --conf")


def export_stage(settings: Settings, checkpoint: Path, output: Path | None, image: Path | None, *,
                 dataset_dir: Path | None = None, split: str = "test") -> ExportResult:
    """Load a checkpoint, export it, and check each file against PyTorch on a real image (and, with
    ``export.evaluate``, on a whole split)."""
    from rfdetr_trainer.integrations.rfdetr.checkpoint import check_checkpoint
    from rfdetr_trainer.integrations.rfdetr.inference import load_model
    from rfdetr_trainer.services.export import export
    from rfdetr_trainer.services.preflight import check_sample_image

    output = Path(output or default_output(settings, checkpoint, "export"))
    check_checkpoint(checkpoint)  # paths first: loading the model takes seconds
    check_writable(output)
    if image is None and settings.export.check:
        image = _image_near(checkpoint, settings)
    if image is not None and settings.export.check:
        check_sample_image(image)
    model = load_model(checkpoint)
    dataset_dir = dataset_dir or dataset_of_run(checkpoint) or next(iter(settings.data.local.dataset_dirs), None)
    run = run_folder_of(checkpoint)
    thresholds = _run_thresholds(run.root) if run else None
    return export(model, settings.export, output, sample_image=image, dataset_dir=dataset_dir, split=split,
                  thresholds=thresholds, evaluation_root=(run.root if run else output.parent) / "evaluation")


def _run_thresholds(run_dir: Path) -> dict[str, float] | None:
    """Per-class thresholds of the run's latest evaluation (test, else valid), if there is one."""
    from rfdetr_trainer.evaluation.files import read_thresholds

    for split in ("test", "valid"):
        path = Path(run_dir) / "evaluation" / split / "thresholds.json"
        if path.is_file():
            try:
                return read_thresholds(path)
            except (OSError, ValueError, AttributeError):
                return None
    return None


def check_predict(source: Path, split: str | None, output: Path, checkpoint: Path) -> None:
    """What predict needs, checked before the model loads: the checkpoint, readable inputs, a usable output."""
    from rfdetr_trainer.errors import CheckpointError
    from rfdetr_trainer.integrations.rfdetr.checkpoint import check_checkpoint
    from rfdetr_trainer.services.predict import resolve_inputs
    from rfdetr_trainer.services.preflight import check_output_folder, check_prediction_inputs

    if checkpoint.suffix.lower() in (".onnx", ".torchscript", ".ts", ".jit"):  # inference.py's exported suffixes
        if not checkpoint.is_file():
            raise CheckpointError(f"{checkpoint}: model file does not exist")
    else:
        check_checkpoint(checkpoint)
    check_prediction_inputs(resolve_inputs(source, split).images)
    check_output_folder(output, "coco_results.json", "an earlier predictions folder")


def _image_near(checkpoint: Path, settings: Settings) -> Path | None:
    """A real image for the parity check: from the run's dataset, else the configured local dataset."""
    import json

    candidates = []
    run = run_folder_of(checkpoint)
    if run is not None:
        config = run.checkpoints / "training_config.json"
        try:
            candidates.append(Path(json.loads(config.read_text())["train_config"]["dataset_dir"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    candidates.extend(Path(d) for d in settings.data.local.dataset_dirs)
    for folder in candidates:
        _, image = sample_image(folder)
        if image is not None:
            return image
    return None


def dataset_of_run(checkpoint: Path | None) -> Path | None:
    """The dataset a checkpoint's run trained on (from ``checkpoints/training_config.json``), if known."""
    import json

    run = run_folder_of(checkpoint) if checkpoint else None
    if run is None:
        return None
    try:
        return Path(json.loads((run.checkpoints / "training_config.json").read_text())["train_config"]["dataset_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def model_source(checkpoint: Path | None, model_file: Path | None) -> Path:
    """The one model a predict/evaluate command runs: ``--checkpoint`` or ``--model``, not both, not neither."""
    from rfdetr_trainer.errors import ConfigError

    if (checkpoint is None) == (model_file is None):
        raise ConfigError("pass exactly one of --checkpoint and --model",
                          hint="--checkpoint run/checkpoints/checkpoint_best_total.pth or --model model.onnx")
    return Path(checkpoint or model_file)


def evaluate_stage(settings: Settings, *, checkpoint: Path | None, model_file: Path | None,
                   dataset_dir: Path | None, split: str, output: Path | None, iou: float = 0.5,
                   confidence: float | None = None, num_errors: int = 16) -> EvaluateResult:
    """Evaluate a checkpoint or an exported file on one split of a dataset."""
    from rfdetr_trainer.errors import ConfigError
    from rfdetr_trainer.integrations.rfdetr.inference import load_backend
    from rfdetr_trainer.services.evaluate import evaluate

    source = model_source(checkpoint, model_file)
    # An exported file in <run>/export/ belongs to that run as much as its checkpoint does.
    anchor = source.parent.parent / "checkpoints" / source.name if source.parent.name == "export" else source
    dataset_dir = dataset_dir or dataset_of_run(anchor) or next(iter(settings.data.local.dataset_dirs), None)
    if dataset_dir is None:
        raise ConfigError("no dataset to evaluate on", hint="pass --dataset-dir")
    leaf = split if model_file is None else f"{split}-{source.suffix.lstrip('.').lower()}"
    run = run_folder_of(anchor)
    output = Path(output or ((run.root if run else Path.cwd()) / "evaluation" / leaf))
    check_writable(output)  # before the model loads; the folder is made when there is something to write
    backend = load_backend(source, device=settings.training.device)
    manifest = Path(dataset_dir) / "dataset_manifest.json"
    return evaluate(backend, Path(dataset_dir), output, split=split, iou=iou, confidence=confidence,
                    batch_size=settings.validation.batch_size, num_errors=num_errors,
                    dataset_manifest=manifest if manifest.is_file() else None)


def final_evaluation(settings: Settings, model: Any, dataset_dir: Path, paths: RunPaths, split: str,
                     tracker: Tracker | None = None) -> EvaluateResult:
    """Evaluate ``model`` (a checkpoint path or a loaded model) on ``split`` into ``<run>/evaluation/<split>``.

    The step after a training: reports to the trackers and rebuilds the run's ``report.html``.
    """
    from rfdetr_trainer.integrations.rfdetr.inference import as_backend, load_backend
    from rfdetr_trainer.logs import get_logger
    from rfdetr_trainer.services.evaluate import evaluate
    from rfdetr_trainer.services.report import build_report

    backend = load_backend(model) if isinstance(model, (str, Path)) else as_backend(model)
    manifest = Path(dataset_dir) / "dataset_manifest.json"
    result = evaluate(backend, dataset_dir, paths.root / "evaluation" / split, split=split,
                      batch_size=settings.validation.batch_size,
                      dataset_manifest=manifest if manifest.is_file() else None)
    if tracker is not None:
        tracker.log_evaluation(result, title=f"eval {split}", tensorboard_dir=paths.tensorboard)
    report = build_report(paths.root)
    get_logger(__name__).info("evaluation on %s: mAP50:95 %s, mAP50 %s; report %s", split,
                              result.metrics.get("mAP50_95"), result.metrics.get("mAP50"), report)
    return result
