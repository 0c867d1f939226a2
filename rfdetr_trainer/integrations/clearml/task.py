"""TaskManager: one ClearML task per run — init, hyperparameters, dataset info, models, close.

``clearml`` is imported inside methods only. Every method is a no-op when the task isn't active (tracking off,
server unreachable and not required, or a non-zero rank), so the runner can call them unconditionally.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from rfdetr_trainer.distributed import is_rank_zero
from rfdetr_trainer.errors import TrackingError
from rfdetr_trainer.integrations.clearml.params import apply_sections, to_sections
from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.schemas.experiment import ClearMLConfig

log = get_logger(__name__)

PING_TIMEOUT_S = 5.0


def running_remotely() -> bool:
    """True when a clearml-agent executes this process (it sets ``CLEARML_TASK_ID``)."""
    from clearml.config import running_remotely as _remote

    return bool(_remote())


def server_host() -> str:
    """The ClearML API server this process would talk to (config file or ``CLEARML_API_HOST``)."""
    from clearml.backend_api.session import Session

    return Session.get_api_server_host()


def ping(host: str, timeout: float = PING_TIMEOUT_S) -> str | None:
    """None when ``host`` answers HTTP at all, else the reason it doesn't (fast, unlike clearml's retries)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{host.rstrip('/')}/debug.ping", timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # it answered; auth is Task.init's business
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))
    return None


#: Every framework hook clearml 2.1 knows, off: our callbacks report what matters, and the torch.save hook
#: would register every checkpoint (and upload each one when output_uri is set) and the TensorBoard hook would
#: duplicate every scalar.
FRAMEWORKS = ("matplotlib", "tensorflow", "tensorboard", "pytorch", "xgboost", "scikit", "fastai", "lightgbm",
              "hydra", "tfdefines", "joblib", "megengine", "catboost", "gradio", "jsonargparse")


def _frameworks(*, detect_repository: bool) -> dict[str, bool]:
    # Repository and requirements detection is what a clearml-agent needs to re-run the task; an offline
    # session can't be enqueued, and the detection can take minutes on a busy machine (close() waits for it).
    return {**{name: False for name in FRAMEWORKS}, "detect_repository": detect_repository}


class TaskManager:
    """Owns the run's ClearML task.

    Args:
        cfg: the ``experiment.clearml`` section.
    """

    def __init__(self, cfg: ClearMLConfig) -> None:
        self.cfg = cfg
        self.task: Any = None
        self.settings: Any = None
        self.overrides: dict[str, tuple] = {}

    @property
    def active(self) -> bool:
        """A task is open and this process reports to it."""
        return self.task is not None

    # ------------------------------------------------------------------------------------------ lifecycle

    def init_task(self, *, task_name: str | None = None, tags: list[str] | None = None) -> bool:
        """Open the ClearML task (offline session, server task, or the agent's task when run by clearml-agent).

        Args:
            task_name: used when ``cfg.task_name`` is unset (the runner passes the run name).
            tags: extra tags added to ``cfg.tags``.

        Returns:
            True when tracking is on; False when disabled, on a non-zero rank, or when the server can't be
            reached (one warning is logged and training goes on).

        Raises:
            TrackingError: the server can't be reached or the task can't be created and ``cfg.required`` is set.
        """
        if not self.cfg.enabled or self.task is not None:
            return self.task is not None
        if not is_rank_zero():
            return False
        try:
            from clearml import Task
        except ImportError as exc:  # pragma: no cover - clearml is a dependency
            return self._unavailable(f"the clearml package is not installed ({exc})", "pip install clearml")
        remote = running_remotely()
        if self.cfg.offline and not remote:
            Task.set_offline(True)
        elif not remote and not Task.is_offline():
            host = server_host()
            reason = ping(host)
            if reason is not None:
                return self._unavailable(
                    f"ClearML server {host} can't be reached ({reason})",
                    "check api.api_server in ~/clearml.conf or CLEARML_API_HOST, or use --clearml-offline",
                )
        try:
            # clearml prints its banners to stdout, which is kept for results; the console log it records is
            # then stderr (every log line and progress bar of the project).
            with contextlib.redirect_stdout(sys.stderr):
                self.task = Task.init(
                    project_name=self.cfg.project_name,
                    task_name=self.cfg.task_name or task_name or "rfdetr-trainer",
                    tags=[*self.cfg.tags, *(tags or [])] or None,
                    output_uri=self.cfg.output_uri,
                    reuse_last_task_id=False,
                    auto_connect_frameworks=_frameworks(detect_repository=not Task.is_offline()),
                    # Settings are connected section by section (connect_params); the CLI isn't argparse.
                    auto_connect_arg_parser=False,
                )
        except Exception as exc:  # MissingConfigError, auth failures, connection errors …
            self.task = None
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return self._unavailable(f"ClearML task could not be created: {type(exc).__name__}: {first[:200]}",
                                     "check the ClearML credentials (clearml-init) or use --clearml-offline")
        where = self.task.get_offline_mode_folder() if Task.is_offline() else self.task.get_output_log_web_page()
        log.info("ClearML task %s (%s)", self.task.id, where)
        return True

    def _unavailable(self, message: str, hint: str) -> bool:
        if self.cfg.required:
            raise TrackingError(message, hint=hint)
        log.warning("%s; training goes on without ClearML tracking", message)
        return False

    def close(self, *, failed: bool = False) -> Path | None:
        """Flush and close the task; returns the offline session folder when offline."""
        if self.task is None:
            return None
        task, self.task = self.task, None
        folder = None
        try:
            if failed:
                try:
                    task.mark_failed(status_reason="run failed", force=True)
                except Exception:  # offline sessions have no status to set
                    pass
            folder = task.get_offline_mode_folder()
            with contextlib.redirect_stdout(sys.stderr):
                task.flush(wait_for_uploads=True)
                task.close()
        except Exception as exc:
            log.warning("ClearML task did not close cleanly: %s", exc)
        # a task that isn't offline answers with a clearml stub object rather than None
        return Path(folder) if isinstance(folder, (str, os.PathLike)) else None

    # ------------------------------------------------------------------------------------------ parameters

    def connect_params(self, settings: Any) -> Any:
        """Show every settings section as editable hyperparameters and return the effective settings.

        Run locally, the values are recorded and ``settings`` comes back unchanged. Under clearml-agent,
        ``task.connect`` returns the values as edited in the UI, and the settings are rebuilt from them (secrets
        are never sent, and are kept from the local ``settings``).

        Raises:
            ConfigError: a value edited in the UI doesn't validate.
        """
        self.settings = settings
        if self.task is None:
            return settings
        returned = {}
        for section, values in to_sections(settings).items():
            connected = self.task.connect(values, name=section)
            returned[section] = dict(connected)
        effective, self.overrides = apply_sections(settings, returned)
        for key, (old, new) in self.overrides.items():
            log.info("ClearML overrides %s: %r -> %r", key, old, new)
        self.settings = effective
        return effective

    def get_config(self, section: str) -> Any:
        """One section of the effective settings (UI values applied under clearml-agent)."""
        if self.settings is None:
            raise RuntimeError("connect_params(settings) must be called first")
        return getattr(self.settings, section)

    def get_model_config(self) -> Any:
        return self.get_config("model")

    def get_training_config(self) -> Any:
        return self.get_config("training")

    def get_data_config(self) -> Any:
        return self.get_config("data")

    def get_experiment_config(self) -> Any:
        return self.get_config("experiment")

    def get_validation_config(self) -> Any:
        return self.get_config("validation")

    def get_export_config(self) -> Any:
        return self.get_config("export")

    # ------------------------------------------------------------------------------------------ reporting

    @property
    def logger(self) -> Any:
        return self.task.get_logger() if self.task is not None else None

    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None:
        if self.task is not None:
            self.logger.report_scalar(title, series, value=float(value), iteration=int(iteration))

    def report_image(self, title: str, series: str, image: Any, iteration: int) -> None:
        if self.task is not None:
            self.logger.report_image(title, series, iteration=int(iteration), image=image)

    def report_console(self, text: str, level: int = logging.INFO) -> None:
        """Add a line to the task's console log (stdout/stderr are captured on their own)."""
        if self.task is not None:
            self.logger.report_text(text, level=level, print_console=False)

    def log_dataset_info(self, manifest: dict[str, Any] | None, *, dataset_dir: Path | None = None) -> None:
        """Split and class counts as tables and bar plots, and the manifest as an artifact.

        Args:
            manifest: the dataset manifest (``counts.splits.<split>.{images, annotations, classes}``); when it
                has no counts, they are read from ``dataset_dir``'s COCO files.
            dataset_dir: the rfdetr-layout dataset, for counts when the manifest has none.
        """
        if self.task is None:
            return
        counts = (manifest or {}).get("counts") or {}
        splits = counts.get("splits") or (count_splits(dataset_dir) if dataset_dir else {})
        logger = self.logger
        if splits:
            rows = [["split", "images", "annotations", "background"]]
            rows += [[name, s.get("images", 0), s.get("annotations", 0), s.get("background", 0)]
                     for name, s in splits.items()]
            logger.report_table("dataset", "splits", iteration=0, table_plot=rows)
            logger.report_histogram("dataset: images per split", "images",
                                    values=[s.get("images", 0) for s in splits.values()],
                                    xlabels=list(splits), iteration=0, xaxis="split", yaxis="images")
            classes = sorted({c for s in splits.values() for c in (s.get("classes") or {})})
            if classes:
                rows = [["class", *splits]]
                rows += [[c, *[(s.get("classes") or {}).get(c, 0) for s in splits.values()]] for c in classes]
                logger.report_table("dataset", "classes", iteration=0, table_plot=rows)
                for name, s in splits.items():
                    logger.report_histogram("dataset: annotations per class", name,
                                            values=[(s.get("classes") or {}).get(c, 0) for c in classes],
                                            xlabels=classes, iteration=0, xaxis="class", yaxis="annotations")
        if manifest:
            self.task.upload_artifact("dataset_manifest", artifact_object=json.loads(json.dumps(manifest, default=str)),
                                      wait_on_upload=True)

    def log_model(self, path: Path, *, name: str, class_names: list[str], metrics: dict[str, float] | None = None,
                  tags: list[str] | None = None) -> Any:
        """Register a checkpoint or exported model as an output model of the task.

        The class names go in as the label enumeration; the class names and final metrics also go in the
        model's configuration (and metadata when a server is used), and the metrics as single values.
        """
        if self.task is None:
            return None
        from clearml import OutputModel, Task

        path = Path(path)
        metrics = {k: float(v) for k, v in (metrics or {}).items()}
        framework = {".onnx": "ONNX", ".pt": "PyTorch", ".pth": "PyTorch", ".ckpt": "PyTorch",
                     ".engine": "TensorRT"}.get(path.suffix.lower(), "Custom")
        class OfflineSafeOutputModel(OutputModel):
            """clearml 2.1's ``published`` reads ``.locked`` on the offline placeholder model, which has none,
            before ``update_weights`` takes its offline path; an offline session only ever holds unpublished
            models. Overriding the public property keeps clear of clearml's private ``_get_base_model``."""

            @property
            def published(self) -> bool:
                try:
                    return bool(super().published)
                except AttributeError:
                    return False

        model = OfflineSafeOutputModel(
            task=self.task, name=name, framework=framework, tags=tags,
            label_enumeration={c: i for i, c in enumerate(class_names)},
            config_dict={"class_names": list(class_names), "metrics": metrics, "file": path.name},
        )
        model.update_weights(weights_filename=str(path), auto_delete_file=False, async_enable=False)
        if not Task.is_offline():
            for key, value in metrics.items():
                try:
                    model.set_metadata(key, str(value), "float")
                except Exception:  # older servers have no model metadata
                    break
        for key, value in metrics.items():
            self.logger.report_single_value(f"{name}/{key}", value)
        return model


def count_splits(dataset_dir: Path) -> dict[str, dict[str, Any]]:
    """Images, annotations, background images and per-class annotations of each split's COCO file."""
    out: dict[str, dict[str, Any]] = {}
    for split in ("train", "valid", "test"):
        path = Path(dataset_dir) / split / "_annotations.coco.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        names = {c["id"]: c["name"] for c in data.get("categories", [])}
        per_class: dict[str, int] = {}
        annotated = set()
        for ann in data.get("annotations", []):
            name = names.get(ann.get("category_id"), str(ann.get("category_id")))
            per_class[name] = per_class.get(name, 0) + 1
            annotated.add(ann.get("image_id"))
        images = data.get("images", [])
        out[split] = {"images": len(images), "annotations": len(data.get("annotations", [])),
                      "background": sum(1 for im in images if im.get("id") not in annotated),
                      "classes": per_class}
    return out
