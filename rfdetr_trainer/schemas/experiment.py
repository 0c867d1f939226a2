"""ExperimentConfig: tracking (ClearML, TensorBoard) and where run outputs go."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from rfdetr_trainer.schemas.base import Section


class ClearMLConfig(Section):
    """ClearML experiment tracking."""

    enabled: bool | Literal["auto"] = Field(
        "auto", description="track the run in ClearML: true, false, or auto (on when ClearML credentials are "
        "configured or a ClearML-only option is given)")
    project_name: str = Field("rfdetr-trainer", description="ClearML project")
    task_name: str | None = Field(None, description="ClearML task name (default: the run name)")
    tags: list[str] = Field(default_factory=list, description="ClearML task tags")
    offline: bool = Field(False, description="record an offline session to import later")
    required: bool = Field(False, description="fail when the ClearML server can't be reached")
    remote_queue: str | None = Field(None, description="enqueue the run on this clearml-agent queue")
    output_uri: str | None = Field(None, description="where ClearML stores output models")
    log_every_n_steps: int = Field(10, ge=1, description="report train loss every N steps")
    debug_images_every_n_epochs: int = Field(1, ge=1, description="report a prediction grid every N epochs")

    def clearml_only_options(self) -> list[str]:
        """The ClearML-only options given (``offline``, ``project_name``, ``task_name``, ``tags``,
        ``remote_queue``), which ask for ClearML when ``enabled`` is ``auto``."""
        given = []
        if self.offline:
            given.append("offline")
        if "project_name" in self.model_fields_set:
            given.append("project_name")
        for name in ("task_name", "remote_queue"):
            if getattr(self, name) is not None:
                given.append(name)
        if self.tags:
            given.append("tags")
        return given

    def resolve(self, credentials_configured: bool) -> ClearMLConfig:
        """This section with ``enabled`` a bool: ``auto`` is on when ``credentials_configured`` or a
        ClearML-only option is given."""
        if isinstance(self.enabled, bool):
            return self
        on = credentials_configured or bool(self.clearml_only_options())
        resolved = self.model_copy(update={"enabled": on})
        # model_copy keeps model_fields_set; project_name stays "given" exactly when it was.
        return resolved


class LoggingConfig(Section):
    """Local logging."""

    tensorboard: bool = Field(True, description="write TensorBoard event files under <output>/tensorboard")

    @model_validator(mode="before")
    @classmethod
    def _drop_level(cls, data: Any) -> Any:
        """``level`` was never read (``-v``/``-q`` set the stderr level): a file that sets it still loads, warned."""
        if isinstance(data, dict) and "level" in data:
            data = {k: v for k, v in data.items() if k != "level"}
            logging.getLogger("rfdetr_trainer.settings").warning(
                "experiment.logging.level is ignored and will be refused in a later version; use -v or -q")
        return data


class ExperimentConfig(Section):
    """Tracking and run outputs."""

    clearml: ClearMLConfig = Field(default_factory=ClearMLConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    output_dir: Path = Field(Path("runs"), description="run outputs: checkpoints, predictions, exports")
    run_name: str | None = Field(None, description="sub-folder of output_dir (default: a timestamp)")
