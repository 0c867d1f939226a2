"""``run`` = fetch -> train -> predict -> export, with a manifest naming every artifact.

The manifest is rewritten after each stage, so rerunning the same command with the same ``--run-name``
reuses finished stages and resumes an interrupted training from its ``last.ckpt``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer import __version__
from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.pipeline.context import RunPaths, load_manifest, run_paths, save_manifest
from rfdetr_trainer.settings import Settings

log = get_logger(__name__)


@dataclass
class RunResult:
    """Every artifact of a run."""

    paths: RunPaths
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def artifacts(self) -> dict[str, str]:
        return dict(self.manifest.get("artifacts", {}))

    @property
    def enqueued(self) -> dict[str, str] | None:
        """The ClearML task and queue when the run was sent to a clearml-agent instead of running here."""
        return self.manifest.get("enqueued")


def sample_image(dataset_dir: Path) -> tuple[str, Path | None]:
    """The split predict runs on (test, else valid) and a real image from it for export parity."""
    import json

    for split in ("test", "valid"):
        ann = Path(dataset_dir) / split / "_annotations.coco.json"
        if ann.is_file():
            images = json.loads(ann.read_text(encoding="utf-8")).get("images", [])
            first = next((ann.parent / i["file_name"] for i in images if (ann.parent / i["file_name"]).is_file()),
                         None)
            return split, first
    return "valid", None


def run(settings: Settings, *, progress: Any = None) -> RunResult | None:
    """Run every stage on ``settings``; each stage's outputs are recorded in ``run_manifest.json``.

    Returns None on DDP ranks other than 0, which only train; a RunResult naming the queued task when the run
    was sent to a clearml-agent queue (``--remote``).
    """
    from rfdetr_trainer.pipeline.stages import named_run
    from rfdetr_trainer.pipeline.tracking import tracking
    from rfdetr_trainer.services.train import preflight

    preflight(settings.model, settings.training)  # fail in milliseconds, before any download
    settings = named_run(settings)
    paths = run_paths(settings.experiment.output_dir, settings.experiment.run_name)
    with tracking(settings, paths.root.name) as tracker:
        if tracker.enqueued:
            return RunResult(paths, {"enqueued": {"task_id": tracker.enqueued,
                                                  "queue": settings.experiment.clearml.remote_queue}})
        return _stages(tracker.settings, paths, tracker, progress)


def _stages(settings: Settings, paths: RunPaths, tracker: Any, progress: Any) -> RunResult | None:
    from rfdetr_trainer.distributed import is_rank_zero

    rank_zero = is_rank_zero()
    previous = load_manifest(paths.manifest)
    manifest: dict[str, Any] = {
        "rfdetr_trainer": __version__,
        "run_dir": str(paths.root),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": settings.masked_dump(),
        "stages": {},
        "artifacts": {},
    }

    def record(stage: str, result: dict[str, Any], **artifacts: Any) -> None:
        manifest["stages"][stage] = {"status": "done", **result}
        manifest["artifacts"].update({k: str(v) for k, v in artifacts.items() if v is not None})
        if rank_zero:
            save_manifest(paths.manifest, manifest)

    current = ["fetch"]
    try:
        return _run_stages(settings, paths, tracker, progress, manifest, previous, record, current, rank_zero)
    except BaseException as exc:
        if rank_zero:
            manifest["stages"][current[0]] = failed_stage(exc)
            manifest["failed"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            save_manifest(paths.manifest, manifest)
        raise


def failed_stage(exc: BaseException) -> dict[str, Any]:
    """The manifest entry of a stage that raised: status, the one-line error and its exit code."""
    from rfdetr_trainer.errors import TrainerError
    from rfdetr_trainer.urls import mask_userinfo

    if isinstance(exc, KeyboardInterrupt):
        return {"status": "interrupted", "error": "interrupted (Ctrl-C)", "exit_code": 130}
    if isinstance(exc, TrainerError):
        return {"status": "failed", "error": mask_userinfo(exc.message), "exit_code": exc.exit_code}
    return {"status": "failed", "error": mask_userinfo(f"{type(exc).__name__}: {exc}"), "exit_code": 1}


def _run_stages(settings: Settings, paths: RunPaths, tracker: Any, progress: Any, manifest: dict[str, Any],
                previous: dict[str, Any], record: Any, current: list[str], rank_zero: bool) -> RunResult | None:
    from rfdetr_trainer.integrations.rfdetr.checkpoint import check_checkpoint
    from rfdetr_trainer.integrations.rfdetr.inference import load_model
    from rfdetr_trainer.pipeline.stages import fetch_stage
    from rfdetr_trainer.services import export as export_service
    from rfdetr_trainer.services import predict as predict_service
    from rfdetr_trainer.services import train as train_service

    log.info("run folder: %s", paths.root)
    fetched = fetch_stage(settings)
    record("fetch", fetched.to_dict(), dataset=fetched.dataset_dir, dataset_manifest=fetched.manifest_path)
    tracker.log_dataset(fetched.manifest_path, fetched.dataset_dir)

    current[0] = "train"
    done = previous.get("stages", {}).get("train", {})
    best = done.get("best_checkpoint") if done.get("status") == "done" else None
    if best and Path(best).is_file():
        log.info("training already finished in %s; reusing %s", paths.root, best)
        manifest["stages"]["train"] = done
        manifest["artifacts"].update({k: v for k, v in previous.get("artifacts", {}).items()
                                      if k in {"best_checkpoint", "checkpoints", "tensorboard", "metrics"}})
        best_checkpoint = Path(best)
        class_names, final_metrics = done.get("class_names", []), done.get("final_metrics", {})
    else:
        training = settings.training
        if training.resume is None and (paths.checkpoints / "last.ckpt").is_file():
            log.info("resuming the interrupted training from %s", paths.checkpoints / "last.ckpt")
            training = training.model_copy(update={"resume": paths.checkpoints / "last.ckpt"})
        trained = train_service.train(
            settings.model, training, fetched.dataset_dir, paths,
            tensorboard=settings.experiment.logging.tensorboard, strict=settings.data.strict, validate=False,
            extra_callbacks=tracker.callbacks, notes=fetched.provenance(),
        )
        if not rank_zero:
            return None
        best_checkpoint = trained.best_checkpoint
        class_names, final_metrics = trained.class_names, trained.final_metrics
        record("train", trained.to_dict(), best_checkpoint=trained.best_checkpoint,
               checkpoints=trained.checkpoints_dir, tensorboard=trained.tensorboard_dir, metrics=trained.metrics_path)
        tracker.log_class_mapping(trained.init_from)
        tracker.log_model(best_checkpoint, name="best", class_names=class_names, metrics=final_metrics)
    if not rank_zero:
        return None

    current[0] = "predict"
    model = load_model(check_checkpoint(best_checkpoint))
    split, image = sample_image(fetched.dataset_dir)
    predicted = predict_service.predict(model, fetched.dataset_dir, paths.predictions, settings.validation,
                                      split=split)
    record("predict", {"split": split, **predicted.to_dict()}, predictions=predicted.output_dir,
           prediction_grid=predicted.grid_path, coco_results=predicted.results_path)

    current[0] = "evaluate"
    evaluated = _evaluate_step(settings, model, fetched.dataset_dir, paths, split, tracker)
    record("evaluate", evaluated.to_dict(), evaluation=evaluated.output_dir, evaluation_metrics=evaluated.metrics_path)

    current[0] = "export"
    export_config = settings.export
    if export_config.evaluate is None:  # on by default in run
        export_config = export_config.model_copy(update={"evaluate": True})
    exported = export_service.export(model, export_config, paths.exports, sample_image=image,
                                     dataset_dir=fetched.dataset_dir, split=split, reference=evaluated,
                                     evaluation_root=paths.root / "evaluation")
    record("export", exported.to_dict(), **{f"export_{k}": v for k, v in exported.files.items()})
    for fmt, path in exported.files.items():
        tracker.log_model(path, name=fmt, class_names=class_names, metrics={**final_metrics, **predicted.metrics})
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    save_manifest(paths.manifest, manifest)
    record("report", {}, report=_report_step(paths))
    if settings.data.minio.upload_to:
        from rfdetr_trainer.integrations.s3 import upload_artifacts

        current[0] = "upload"
        files = [best_checkpoint, *exported.files.values(), paths.manifest]
        if fetched.manifest_path:
            files.append(fetched.manifest_path)
        uris = upload_artifacts(settings.data.minio, files, settings.data.minio.upload_to, progress=progress)
        record("upload", {"uris": uris})
    return RunResult(paths, manifest)


def _evaluate_step(settings: Settings, model: Any, dataset_dir: Path, paths: RunPaths, split: str,
                   tracker: Any) -> Any:
    """Evaluate the best checkpoint on the split predict used (test when the dataset has one)."""
    from rfdetr_trainer.pipeline.stages import final_evaluation

    return final_evaluation(settings, model, dataset_dir, paths, split, tracker)


def _report_step(paths: RunPaths) -> Path:
    from rfdetr_trainer.services.report import build_report

    return build_report(paths.root)
