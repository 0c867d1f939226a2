"""The export stage: ONNX and TorchScript files, each run once and compared with PyTorch."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import ExportError
from rfdetr_trainer.fsutil import discard_on_failure, follow_umask, remove_stale_temporaries, temp_prefix
from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.pipeline.context import check_writable
from rfdetr_trainer.schemas import ExportConfig
from rfdetr_trainer.services.preflight import check_sample_image

log = get_logger(__name__)


@dataclass
class ExportResult:
    """Exported files and their parity with PyTorch."""

    files: dict[str, Path]
    parity: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"files": {k: str(v) for k, v in self.files.items()}, "parity": self.parity}


def export(model: Any, config: ExportConfig, output_dir: Path, *, sample_image: Path | None) -> ExportResult:
    """Export ``model`` in every configured format and prove each file matches PyTorch on ``sample_image``.

    Files are written into a temporary sibling of ``output_dir`` and moved into it only once every format is
    exported and checked: a failed export or parity check leaves an earlier, verified model in place, and no
    new (or empty) ``output_dir``.

    Args:
        model: a loaded rfdetr model.
        config: formats and options.
        output_dir: folder for the files (``model.onnx``, ``model.torchscript``; ``*_fp16.*`` with half).
        sample_image: a real image for the parity check; required when ``config.check`` is on.

    Raises:
        ConfigError: ``sample_image`` is missing or not an image.
        ExportError: an export failed, or an exported model disagrees with PyTorch beyond the tolerance.
        OutputError: ``output_dir`` cannot be written.
    """
    output_dir = Path(output_dir)
    if config.check and sample_image is None:
        raise ExportError("no image for the parity check", hint="pass --image, or --no-check to skip the check")
    if config.check:
        check_sample_image(sample_image)
    check_writable(output_dir)
    with discard_on_failure(output_dir):
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(output_dir)
        staging = Path(tempfile.mkdtemp(prefix=temp_prefix(output_dir), dir=output_dir.parent))
        try:
            staged, parity = _export_checked(model, config, staging, sample_image)
            output_dir.mkdir(exist_ok=True)
            files = {}
            for fmt, path in staged.items():
                files[fmt] = output_dir / path.name
                follow_umask(path)
                os.replace(path, files[fmt])  # same file system: each file appears whole, already checked
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(files, parity)


def _export_checked(model: Any, config: ExportConfig, output_dir: Path, sample_image: Path | None
                    ) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    from rfdetr_trainer.integrations.rfdetr import export as backend

    atol = max(config.parity_atol, backend.HALF_ATOL) if config.half else config.parity_atol
    batch = 2 if config.dynamic_batch else 1  # a dynamic graph must also run at a batch it was not traced with
    files: dict[str, Path] = {}
    parity: list[dict[str, Any]] = []
    for fmt in dict.fromkeys(config.format):
        log.info("exporting %s%s", fmt, " (fp16)" if config.half else "")
        if fmt == "onnx":
            path = backend.export_onnx(model, output_dir, opset=config.opset, dynamic_batch=config.dynamic_batch,
                                       simplify=config.simplify, half=config.half)
        elif fmt == "torchscript":
            path = backend.export_torchscript(model, output_dir, half=config.half)
        else:  # guarded by ExportConfig's Literal; kept for library callers
            raise ExportError(f"export.format: unknown format {fmt!r}", hint="use onnx or torchscript")
        files[fmt] = path
        if not config.check:
            continue
        if fmt == "onnx":
            result = backend.check_onnx(path, model, sample_image, atol=atol, batch=batch)
        else:
            result = backend.check_torchscript(path, model, sample_image, atol=atol, half=config.half, batch=batch)
        parity.append(result.to_dict())
        log.info("%s parity: %.1f%% of queries agree; max box diff %.2e, max score diff %.2e (tolerance %.0e)",
                 fmt, 100 * result.matched_fraction, result.max_box_diff, result.max_score_diff, result.atol)
        if not result.ok:
            raise ExportError(
                f"{fmt}: exported model disagrees with PyTorch on {sample_image}: "
                f"{100 * result.matched_fraction:.1f}% of queries agree (need {100 * backend.MIN_MATCHED:g}%), "
                f"max box diff {result.max_box_diff:.3g}, max score diff {result.max_score_diff:.3g} "
                f"(tolerance {result.atol:g}); nothing was written"
            )
    return files, parity
