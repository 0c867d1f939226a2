"""Experiment tracking around a run: ClearML task, its callbacks, TensorBoard prediction images.

One place for what ``run`` and ``train`` both do, so each stays a straight line of stage calls.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.settings import Settings

log = get_logger(__name__)


@dataclass
class Tracker:
    """The run's trackers; every method is a no-op where tracking is off or on a non-zero rank."""

    settings: Settings
    task_manager: Any = None
    enqueued: str | None = None  # the ClearML task id when the run was sent to a clearml-agent queue
    callbacks: list[Any] = field(default_factory=list)

    def log_dataset(self, manifest_path: Path | None, dataset_dir: Path) -> None:
        if self.task_manager is None:
            return
        import json

        manifest = None
        if manifest_path and Path(manifest_path).is_file():
            manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
        self.task_manager.log_dataset_info(manifest, dataset_dir=dataset_dir)

    def log_class_mapping(self, mapping: dict[str, Any] | None) -> None:
        """Record ``--init-from``'s class-head mapping as a ClearML configuration object."""
        if self.task_manager is not None and self.task_manager.task is not None and mapping:
            self.task_manager.task.connect_configuration(mapping, name="init_from class mapping")

    def log_model(self, path: Path, *, name: str, class_names: list[str], metrics: dict[str, float]) -> None:
        if self.task_manager is not None:
            self.task_manager.log_model(path, name=name, class_names=class_names, metrics=metrics)

    def log_evaluation(self, result: Any, *, title: str, tensorboard_dir: Path | None = None) -> None:
        """An evaluate result to ClearML (tables, matrix, curves, thresholds) and its figures to TensorBoard."""
        if self.task_manager is not None and self.task_manager.active and result.evaluation is not None:
            from rfdetr_trainer.integrations.clearml.evaluation import report_evaluation

            report_evaluation(self.task_manager.task, result.evaluation, title=title)
        if tensorboard_dir is not None and self.settings.experiment.logging.tensorboard:
            from rfdetr_trainer.integrations.tensorboard import write_evaluation_figures

            write_evaluation_figures(tensorboard_dir, result.files, prefix=title)


#: Flags of the ClearML-only options, for the warning when they come with --no-clearml.
_FLAGS = {"offline": "--clearml-offline", "project_name": "--project-name", "task_name": "--task-name",
          "tags": "--tags", "remote_queue": "--remote"}


def clearml_credentials_configured(environ: dict[str, str] | None = None) -> bool:
    """ClearML is configured here: ``CLEARML_API_*`` credentials or a host in the environment, or a
    ``clearml.conf`` (``CLEARML_CONFIG_FILE``, else ``~/clearml.conf``) that names a server or credentials, as
    ``clearml-init`` writes it (a file of ``sdk`` settings only does not count). Reads files only, no network."""
    import os

    env = os.environ if environ is None else environ
    if env.get("CLEARML_API_ACCESS_KEY") or env.get("CLEARML_API_HOST"):
        return True
    conf = env.get("CLEARML_CONFIG_FILE") or env.get("TRAINS_CONFIG_FILE")
    candidates = [Path(conf).expanduser()] if conf else [Path.home() / "clearml.conf", Path.home() / "trains.conf"]
    for conf_file in candidates:
        try:
            text = conf_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "access_key" in text or "api_server" in text:
            return True
    return False


def resolve_clearml(settings: Settings) -> Settings:
    """Settings with ``experiment.clearml.enabled`` decided: ``auto`` becomes on or off (see
    :meth:`ClearMLConfig.resolve`); ClearML-only options together with ``--no-clearml`` log one warning."""
    cfg = settings.experiment.clearml
    if cfg.enabled is False and cfg.clearml_only_options():
        flags = ", ".join(_FLAGS[n] for n in cfg.clearml_only_options())
        log.warning("ClearML is off (--no-clearml or experiment.clearml.enabled=false); ignoring %s", flags)
    if isinstance(cfg.enabled, bool):
        return settings
    resolved = cfg.resolve(clearml_credentials_configured())
    if resolved.enabled:
        why = ", ".join(_FLAGS[n] for n in cfg.clearml_only_options()) or "ClearML credentials are configured"
        log.info("ClearML tracking on (%s; --no-clearml turns it off)", why)
    experiment = settings.experiment.model_copy(update={"clearml": resolved})
    return settings.model_copy(update={"experiment": experiment})


@contextlib.contextmanager
def tracking(settings: Settings, run_name: str, *, argv: list[str] | None = None) -> Iterator[Tracker]:
    """Open the run's trackers; the yielded ``tracker.settings`` hold any values edited in the ClearML UI.

    Args:
        settings: the run's settings.
        run_name: default ClearML task name.
        argv: the command line, for ``--remote`` (default ``sys.argv[1:]``).

    Raises:
        TrackingError: ClearML is required but unavailable, or ``--remote`` without a task.
    """
    settings = resolve_clearml(settings)
    tracker = Tracker(settings)
    manager = None
    if settings.experiment.clearml.enabled:
        from rfdetr_trainer.integrations.clearml import TaskManager, enqueue_remote, make_callback

        manager = TaskManager(settings.experiment.clearml)
        if manager.init_task(task_name=run_name):
            tracker.task_manager = manager
            tracker.settings = settings = manager.connect_params(settings)
            tracker.callbacks.append(make_callback(manager, settings.experiment.clearml))
        queue = settings.experiment.clearml.remote_queue
        if queue and enqueue_remote(manager, queue, argv=argv if argv is not None else sys.argv[1:]):
            tracker.enqueued = str(manager.task.id)
    elif settings.experiment.clearml.remote_queue:
        from rfdetr_trainer.errors import TrackingError

        raise TrackingError("--remote needs ClearML tracking", hint="add --clearml")
    if settings.experiment.logging.tensorboard:
        from rfdetr_trainer.integrations import tensorboard

        tracker.callbacks.extend(
            tensorboard.make_callbacks(every_n_epochs=settings.experiment.clearml.debug_images_every_n_epochs))
    try:
        yield tracker
    except BaseException:
        if manager is not None:
            manager.close(failed=True)
        raise
    if manager is not None:
        manager.close()
