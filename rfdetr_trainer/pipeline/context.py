"""A run's state: its context (settings, folder, trackers), its artifacts, and the run manifest.

``open_run`` is the one way a command starts a run (``run`` and ``train`` alike): preflight, naming, run folder,
tracking. Where a run's outputs go (``RunPaths``) lives below the services and is re-exported here.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfdetr_trainer.coco.io import write_text_atomic
from rfdetr_trainer.fsutil import check_writable
from rfdetr_trainer.runpaths import MANIFEST_NAME, RunPaths, run_paths

if TYPE_CHECKING:
    from rfdetr_trainer.pipeline.tracking import Tracker
    from rfdetr_trainer.settings import Settings

# RunPaths' home is below the services (runpaths.py, fsutil.py); re-exported for the pipeline and older imports.
__all__ = ["MANIFEST_NAME", "RUN_NAME_VARIABLE", "Enqueued", "ManifestBook", "RunArtifacts", "RunContext",
           "RunPaths", "check_writable", "failed_stage", "load_manifest", "named_run", "open_run", "run_paths",
           "sample_image", "save_manifest"]

#: The variable a run's generated name is published in, for the processes a multi-device run starts later
#: (``settings.ENV_PREFIX`` + ``EXPERIMENT__RUN_NAME``; spelled out so this module does not import pydantic).
RUN_NAME_VARIABLE = "RFDETR_TRAINER_EXPERIMENT__RUN_NAME"


@dataclass(frozen=True)
class Enqueued:
    """A run sent to a clearml-agent queue (``--remote``) instead of running here."""

    task_id: str
    queue: str | None


@dataclass(frozen=True)
class RunContext:
    """What every stage of one run shares, fixed once :func:`open_run` has named the run and opened tracking.

    Attributes:
        settings: the run's settings, named, with any values edited in the ClearML UI.
        paths: the run folder.
        tracker: the run's trackers (no-ops where tracking is off).
        generated_name: the run name made up for this run (no ``--run-name``), else None.
        enqueued: the queued ClearML task when the run went to a clearml-agent; nothing runs here then.
    """

    settings: Settings
    paths: RunPaths
    tracker: Tracker
    generated_name: str | None = None
    enqueued: Enqueued | None = None

    @property
    def run_name(self) -> str:
        return self.paths.root.name


@dataclass(frozen=True)
class RunArtifacts:
    """Every artifact of a finished ``run``: its folder and the manifest naming each output."""

    paths: RunPaths
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def artifacts(self) -> dict[str, str]:
        return dict(self.manifest.get("artifacts", {}))


def named_run(settings: Settings) -> Settings:
    """Settings with a run name every process of a multi-process run agrees on.

    Lightning's DDP launcher re-executes the command line for each extra device, and torchrun starts every rank
    at once: a timestamp taken in each would name different folders. The name goes into the environment, which
    re-executed children read through the settings layer.
    """
    if settings.experiment.run_name:
        return settings
    elastic = os.environ.get("TORCHELASTIC_RUN_ID")
    name = f"run-{elastic}" if elastic and elastic != "none" else time.strftime("run-%Y%m%d-%H%M%S")
    os.environ[RUN_NAME_VARIABLE] = name
    return settings.model_copy(update={"experiment": settings.experiment.model_copy(update={"run_name": name})})


@contextlib.contextmanager
def open_run(settings: Settings, *, keep: tuple[str, ...] | None = None) -> Iterator[RunContext]:
    """Start a run: preflight, name it, check its folder, open its trackers; close them when the block ends.

    Args:
        settings: the command's settings.
        keep: when given, a run folder this call created is removed if the block fails, unless it holds a
            file matching one of these patterns (``*.ckpt``: worth resuming from). None leaves it (``run``
            records the failure in its manifest there).

    Raises:
        Interrupted: Ctrl-C inside the block, carrying the generated run name for the resume hint.
        TrainingError, ConfigError, OutputError: preflight or the run folder failed, before any download.
        TrackingError: ClearML is required but unavailable.
    """
    from rfdetr_trainer.errors import Interrupted
    from rfdetr_trainer.fsutil import discard_on_failure
    from rfdetr_trainer.pipeline.tracking import tracking
    from rfdetr_trainer.services.train import preflight

    preflight(settings.model, settings.training)  # fail in milliseconds, before any download
    named = named_run(settings)
    generated = None if settings.experiment.run_name else named.experiment.run_name
    settings = named
    paths = run_paths(settings.experiment.output_dir, settings.experiment.run_name)
    cleanup = discard_on_failure(paths.root, keep=keep) if keep is not None else contextlib.nullcontext()
    try:
        with cleanup, tracking(settings, paths.root.name) as tracker:
            enqueued = None
            if tracker.enqueued:
                enqueued = Enqueued(tracker.enqueued, settings.experiment.clearml.remote_queue)
            yield RunContext(tracker.settings, paths, tracker, generated_name=generated, enqueued=enqueued)
    except KeyboardInterrupt as exc:
        if generated and not isinstance(exc, Interrupted):
            raise Interrupted(run_name=generated) from exc
        raise


def sample_image(dataset_dir: Path) -> tuple[str, Path | None]:
    """The split predict runs on (test, else valid) and a real image from it for export parity."""
    for split in ("test", "valid"):
        ann = Path(dataset_dir) / split / "_annotations.coco.json"
        if ann.is_file():
            images = json.loads(ann.read_text(encoding="utf-8")).get("images", [])
            first = next((ann.parent / i["file_name"] for i in images if (ann.parent / i["file_name"]).is_file()),
                         None)
            return split, first
    return "valid", None


def save_manifest(path: Path, manifest: dict[str, Any]) -> Path:
    """Write a manifest atomically (JSON, sorted keys, paths as strings)."""
    write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return path


def load_manifest(path: Path) -> dict[str, Any]:
    """Read a run manifest; an unreadable one is treated as absent."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@dataclass
class ManifestBook:
    """A run manifest as the stages fill it in (``run`` and ``train`` alike); saved after every stage on rank 0."""

    ctx: RunContext
    rank_zero: bool
    previous: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    current: str = "fetch"

    @classmethod
    def start(cls, ctx: RunContext, rank_zero: bool) -> ManifestBook:
        """A new manifest for ``ctx``'s run (the secrets in its config masked); the previous one kept aside."""
        from rfdetr_trainer import __version__

        return cls(ctx, rank_zero, load_manifest(ctx.paths.manifest), {
            "rfdetr_trainer": __version__,
            "run_dir": str(ctx.paths.root),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": ctx.settings.masked_dump(),
            "stages": {},
            "artifacts": {},
        })

    def record(self, stage: str, result: dict[str, Any], **artifacts: Any) -> None:
        self.manifest["stages"][stage] = {"status": "done", **result}
        self.manifest["artifacts"].update({k: str(v) for k, v in artifacts.items() if v is not None})
        if self.rank_zero:
            save_manifest(self.ctx.paths.manifest, self.manifest)

    def finish(self) -> None:
        """Stamp the manifest finished (and save it on rank 0)."""
        self.manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if self.rank_zero:
            save_manifest(self.ctx.paths.manifest, self.manifest)

    def fail(self, exc: BaseException) -> None:
        self.manifest["stages"][self.current] = failed_stage(exc)
        self.manifest["failed"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        save_manifest(self.ctx.paths.manifest, self.manifest)


def failed_stage(exc: BaseException) -> dict[str, Any]:
    """The manifest entry of a stage that raised: status, the one-line error and its exit code."""
    from rfdetr_trainer.errors import TrainerError
    from rfdetr_trainer.urls import mask_userinfo

    if isinstance(exc, KeyboardInterrupt):
        return {"status": "interrupted", "error": "interrupted (Ctrl-C)", "exit_code": 130}
    if isinstance(exc, TrainerError):
        return {"status": "failed", "error": mask_userinfo(exc.message), "exit_code": exc.exit_code}
    return {"status": "failed", "error": mask_userinfo(f"{type(exc).__name__}: {exc}"), "exit_code": 1}
