"""``run`` = fetch -> train -> predict -> evaluate -> export, with a manifest naming every artifact.

It chains the single stages of ``pipeline/stages.py`` (which never import this module) in one run opened by
``pipeline.context.open_run``, as ``train`` opens its own.

The manifest is rewritten after each stage, so rerunning the same command with the same ``--run-name``
reuses finished stages and resumes an interrupted training from its ``last.ckpt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.pipeline.context import (
    Enqueued,
    ManifestBook,
    RunArtifacts,
    RunContext,
    open_run,
    sample_image,
)
from rfdetr_trainer.pipeline.stages import evaluate_recorded, fetch_recorded, train_recorded
from rfdetr_trainer.settings import Settings

if TYPE_CHECKING:
    from rfdetr_trainer.services.evaluate import EvaluateResult
    from rfdetr_trainer.services.export import ExportResult
    from rfdetr_trainer.services.fetch import FetchResult
    from rfdetr_trainer.services.predict import PredictResult

log = get_logger(__name__)

#: The train stage's artifacts a rerun takes over from the previous manifest when training is reused.
_TRAIN_ARTIFACTS = frozenset({"best_checkpoint", "checkpoints", "tensorboard", "metrics"})


@dataclass(frozen=True)
class Trained:
    """What the later stages need of training, whether it ran now or was reused from the previous run."""

    best_checkpoint: Path
    class_names: list[str]
    final_metrics: dict[str, float]


def run(settings: Settings, *, progress: Any = None) -> RunArtifacts | Enqueued | None:
    """Run every stage on ``settings``; each stage's outputs are recorded in ``run_manifest.json``.

    Returns:
        The run's artifacts; the queued task when the run was sent to a clearml-agent queue (``--remote``);
        None on DDP ranks other than 0, which only train.
    """
    with open_run(settings) as ctx:
        if ctx.enqueued:
            return ctx.enqueued
        return _stages(ctx, progress)


def _stages(ctx: RunContext, progress: Any) -> RunArtifacts | None:
    from rfdetr_trainer.distributed import is_rank_zero

    rank_zero = is_rank_zero()
    book = ManifestBook.start(ctx, rank_zero)
    try:
        return _run_stages(ctx, book, progress, rank_zero)
    except BaseException as exc:
        if rank_zero:
            book.fail(exc)
        raise


def _run_stages(ctx: RunContext, book: ManifestBook, progress: Any, rank_zero: bool) -> RunArtifacts | None:
    from rfdetr_trainer.integrations.rfdetr.checkpoint import check_checkpoint
    from rfdetr_trainer.integrations.rfdetr.inference import load_model

    settings, paths, tracker = ctx.settings, ctx.paths, ctx.tracker
    log.info("run folder: %s", paths.root)
    fetched = fetch_recorded(ctx, book)

    book.current = "train"
    trained = _reused_training(book) or _train_step(ctx, book, fetched)
    if trained is None or not rank_zero:
        return None

    book.current = "predict"
    model = load_model(check_checkpoint(trained.best_checkpoint))
    split, image = sample_image(fetched.dataset_dir)
    predicted = _predict_step(ctx, book, model, fetched.dataset_dir, split)

    book.current = "evaluate"
    evaluated = evaluate_recorded(ctx, book, model, fetched.dataset_dir, split)

    book.current = "export"
    exported = _export_step(ctx, book, model, fetched.dataset_dir, split, image, evaluated)
    for fmt, path in exported.files.items():
        tracker.log_model(path, name=fmt, class_names=trained.class_names,
                          metrics={**trained.final_metrics, **predicted.metrics})
    book.finish()
    book.record("report", {}, report=_report_step(ctx))
    if settings.data.minio.upload_to:
        book.current = "upload"
        book.record("upload", {"uris": _upload_step(ctx, fetched, trained, exported, progress)})
    return RunArtifacts(paths, book.manifest)


def _reused_training(book: ManifestBook) -> Trained | None:
    """The previous run's training when it finished and its best checkpoint is still there."""
    done = book.previous.get("stages", {}).get("train", {})
    best = done.get("best_checkpoint") if done.get("status") == "done" else None
    if not (best and Path(best).is_file()):
        return None
    log.info("training already finished in %s; reusing %s", book.ctx.paths.root, best)
    book.manifest["stages"]["train"] = done
    book.manifest["artifacts"].update({k: v for k, v in book.previous.get("artifacts", {}).items()
                                       if k in _TRAIN_ARTIFACTS})
    return Trained(Path(best), done.get("class_names", []), done.get("final_metrics", {}))


def _train_step(ctx: RunContext, book: ManifestBook, fetched: FetchResult) -> Trained | None:
    """Train (resuming an interrupted training of this run from its ``last.ckpt``); None off rank 0."""
    paths, training = ctx.paths, ctx.settings.training
    if training.resume is None and (paths.checkpoints / "last.ckpt").is_file():
        log.info("resuming the interrupted training from %s", paths.checkpoints / "last.ckpt")
        training = training.model_copy(update={"resume": paths.checkpoints / "last.ckpt"})
    result = train_recorded(ctx, book, fetched, training)
    if result is None:
        return None
    return Trained(result.best_checkpoint, result.class_names, result.final_metrics)


def _predict_step(ctx: RunContext, book: ManifestBook, model: Any, dataset_dir: Path, split: str) -> PredictResult:
    from rfdetr_trainer.services import predict as predict_service

    predicted = predict_service.predict(model, dataset_dir, ctx.paths.predictions, ctx.settings.validation,
                                        split=split)
    book.record("predict", {"split": split, **predicted.to_dict()}, predictions=predicted.output_dir,
                prediction_grid=predicted.grid_path, coco_results=predicted.results_path)
    return predicted


def _export_step(ctx: RunContext, book: ManifestBook, model: Any, dataset_dir: Path, split: str, image: Path | None,
                 evaluated: EvaluateResult) -> ExportResult:
    from rfdetr_trainer.services import export as export_service

    export_config = ctx.settings.export
    if export_config.evaluate is None:  # on by default in run
        export_config = export_config.model_copy(update={"evaluate": True})
    exported = export_service.export(model, export_config, ctx.paths.exports, sample_image=image,
                                     dataset_dir=dataset_dir, split=split, reference=evaluated,
                                     evaluation_root=ctx.paths.root / "evaluation")
    book.record("export", exported.to_dict(), **{f"export_{k}": v for k, v in exported.files.items()})
    return exported


def _report_step(ctx: RunContext) -> Path:
    from rfdetr_trainer.services.report import build_report

    return build_report(ctx.paths.root)


def _upload_step(ctx: RunContext, fetched: FetchResult, trained: Trained, exported: ExportResult,
                 progress: Any) -> list[str]:
    """Upload the best checkpoint, the exported files and the manifests to ``--upload-to``; their URIs."""
    from rfdetr_trainer.integrations.s3 import upload_artifacts

    minio = ctx.settings.data.minio
    files = [trained.best_checkpoint, *exported.files.values(), ctx.paths.manifest]
    if fetched.manifest_path:
        files.append(fetched.manifest_path)
    return upload_artifacts(minio, files, minio.upload_to, progress=progress)
