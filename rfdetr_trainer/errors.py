"""Typed errors, each carrying its exit code.

The CLI maps these to exit codes in exactly one place (``cli/app.py``); services and integrations raise them
with one line that names the file, field or id at fault, plus an optional hint.
"""

from __future__ import annotations


class TrainerError(Exception):
    """Base of every error the user is expected to act on."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(TrainerError):
    """A configuration value, file or flag is invalid."""

    exit_code = 3


class DatasetError(TrainerError):
    """A dataset is missing, malformed or fails validation."""

    exit_code = 4


class SourceError(TrainerError):
    """A remote source (CVAT, S3/MinIO) failed: unreachable, missing id, failed export."""

    exit_code = 5


class AuthError(SourceError):
    """Credentials were rejected or access was forbidden by a remote source."""

    exit_code = 6


class TrainingError(TrainerError):
    """Training could not start or failed."""

    exit_code = 7


class CheckpointError(TrainerError):
    """A checkpoint does not exist, is not a checkpoint, or does not match the model."""

    exit_code = 8


class PredictionError(TrainerError):
    """Prediction could not run."""

    exit_code = 9


class ExportError(TrainerError):
    """Export failed or the exported model disagrees with PyTorch."""

    exit_code = 10


class OutputError(TrainerError):
    """An output location cannot be written."""

    exit_code = 11


class TrackingError(TrainerError):
    """Experiment tracking (ClearML) failed where it was required."""

    exit_code = 12


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run, carrying what the resume hint needs.

    A ``KeyboardInterrupt`` still (every ``except KeyboardInterrupt`` and clean-up treats it as one), raised by
    ``pipeline.context.open_run`` in place of the bare interrupt.

    Attributes:
        run_name: the run name this process made up because no ``--run-name`` was given; rerunning with it
            reuses the run folder. None when the user named the run (the same command resumes as it is).
    """

    exit_code = 130

    def __init__(self, run_name: str | None = None) -> None:
        super().__init__()
        self.run_name = run_name


#: Exit codes documented in the README; kept here so the docs test can compare.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected internal error (run with --debug for the traceback)",
    2: "usage error: unknown flag or bad flag value (reported by the CLI parser)",
    ConfigError.exit_code: "configuration error (config file, env variable or flag value)",
    DatasetError.exit_code: "dataset error (missing, malformed or failing validation)",
    SourceError.exit_code: "remote source error (CVAT or S3/MinIO unreachable, missing id, failed export)",
    AuthError.exit_code: "authentication or permission error at a remote source",
    TrainingError.exit_code: "training error",
    CheckpointError.exit_code: "checkpoint missing, unreadable or not a checkpoint",
    PredictionError.exit_code: "prediction error",
    ExportError.exit_code: "export error, including an exported model that disagrees with PyTorch",
    OutputError.exit_code: "output directory not writable",
    TrackingError.exit_code: "experiment tracking required but unavailable",
    Interrupted.exit_code: "interrupted (Ctrl-C); rerun to resume",
}
