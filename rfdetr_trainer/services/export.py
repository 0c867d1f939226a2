"""The export stage: ONNX and TorchScript files, each run once and compared with PyTorch."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import ExportError
from rfdetr_trainer.fsutil import (
    check_writable,
    discard_on_failure,
    follow_umask,
    remove_stale_temporaries,
    temp_prefix,
)
from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.schemas import ExportConfig
from rfdetr_trainer.services.preflight import check_sample_image

log = get_logger(__name__)


@dataclass
class ExportResult:
    """Exported files and their parity with PyTorch."""

    files: dict[str, Path]
    parity: list[dict[str, Any]] = field(default_factory=list)
    evaluation: list[dict[str, Any]] = field(default_factory=list)  # mAP of PyTorch and of each file

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"files": {k: str(v) for k, v in self.files.items()}, "parity": self.parity}
        if self.evaluation:
            out["evaluation"] = self.evaluation
        return out


def export(model: Any, config: ExportConfig, output_dir: Path, *, sample_image: Path | None,
           dataset_dir: Path | None = None, split: str = "test", thresholds: dict[str, float] | None = None,
           reference: Any = None, evaluation_root: Path | None = None) -> ExportResult:
    """Export ``model`` in every configured format and prove each file matches PyTorch on ``sample_image``.

    Files are written into a temporary sibling of ``output_dir`` and moved into it only once every format is
    exported and checked: a failed export or parity check leaves an earlier, verified model in place, and no
    new (or empty) ``output_dir``.

    Args:
        model: a loaded rfdetr model.
        config: formats and options.
        output_dir: folder for the files (``model.onnx``, ``model.torchscript``; ``*_fp16.*`` with half).
        sample_image: a real image for the parity check; required when ``config.check`` is on.
        dataset_dir: dataset whose ``split`` ``config.evaluate`` evaluates every file on.
        split: the split evaluated.
        thresholds: per-class confidences stored in the files' metadata (an evaluation's thresholds.json);
            with ``config.evaluate`` the PyTorch evaluation's own are used.
        reference: the PyTorch model's EvaluateResult on ``split`` when one was just computed (``run``).
        evaluation_root: where the evaluation folders go (default: ``<output_dir>/../evaluation``).

    Raises:
        ConfigError: ``sample_image`` is missing or not an image.
        ExportError: an export failed, an exported model disagrees with PyTorch beyond the tolerance, or its
            mAP50:95 is more than ``config.max_map_drop`` below PyTorch's (exit 10).
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
            staged, parity, scores = _export_checked(
                model, config, staging, sample_image, dataset_dir=dataset_dir, split=split, thresholds=thresholds,
                reference=reference, evaluation_root=evaluation_root or output_dir.parent / "evaluation")
            output_dir.mkdir(exist_ok=True)
            files = {}
            for fmt, path in staged.items():
                files[fmt] = output_dir / path.name
                follow_umask(path)
                os.replace(path, files[fmt])  # same file system: each file appears whole, already checked
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(files, parity, scores)


def _export_checked(model: Any, config: ExportConfig, output_dir: Path, sample_image: Path | None, *,
                    dataset_dir: Path | None, split: str, thresholds: dict[str, float] | None, reference: Any,
                    evaluation_root: Path) -> tuple[dict[str, Path], list[dict[str, Any]], list[dict[str, Any]]]:
    """Export into ``output_dir`` (the staging folder), check parity, and evaluate each file when asked."""
    from rfdetr_trainer.integrations.rfdetr import export as backend

    atol = max(config.parity_atol, backend.HALF_ATOL) if config.half else config.parity_atol
    batch = 2 if config.dynamic_batch else 1  # a dynamic graph must also run at a batch it was not traced with
    files: dict[str, Path] = {}
    parity: list[dict[str, Any]] = []
    evaluation_root = Path(evaluation_root)
    if config.evaluate:
        reference = reference or _evaluate(model, dataset_dir, split, evaluation_root / split)
        thresholds = reference.evaluation.thresholds["per_class"] if reference.evaluation else thresholds
    metadata = _metadata(model, thresholds)
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
        _stamp(path, metadata)
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
    scores = _compare_maps(reference, files, dataset_dir, split, evaluation_root, config.max_map_drop) \
        if config.evaluate else []
    return files, parity, scores


def _metadata(model: Any, thresholds: dict[str, float] | None) -> dict[str, Any]:
    from rfdetr_trainer.integrations.rfdetr.inference import as_backend

    meta = as_backend(model).metadata()
    meta["thresholds"] = {k: v for k, v in (thresholds or {}).items() if v is not None and v == v}
    return meta


def _stamp(path: Path, metadata: dict[str, Any]) -> None:
    from rfdetr_trainer.integrations.rfdetr.export_meta import stamp

    stamp(path, metadata)


def _evaluate(model: Any, dataset_dir: Path | None, split: str, output: Path) -> Any:
    from rfdetr_trainer.services.evaluate import evaluate

    if dataset_dir is None:
        raise ExportError("--evaluate needs the dataset the model was trained on",
                          hint="export a checkpoint from a run folder, or pass --dataset-dir")
    return evaluate(model, dataset_dir, output, split=split, num_errors=0, plots=False)


def _compare_maps(reference: Any, files: dict[str, Path], dataset_dir: Path | None, split: str,
                  evaluation_root: Path, max_drop: float) -> list[dict[str, Any]]:
    """Evaluate every exported file like the PyTorch model; raise when one loses more than ``max_drop`` mAP."""
    from rfdetr_trainer.integrations.rfdetr.inference import load_backend

    base = reference.metrics
    rows = [{"format": "pytorch", "mAP50_95": base["mAP50_95"], "mAP50": base["mAP50"], "drop": 0.0,
             "metrics_json": str(reference.metrics_path)}]
    for fmt, path in files.items():
        result = _evaluate(load_backend(path, device="cpu"), dataset_dir, split, evaluation_root / f"{split}-{fmt}")
        drop = round((base["mAP50_95"] or 0.0) - (result.metrics["mAP50_95"] or 0.0), 6)
        rows.append({"format": fmt, "mAP50_95": result.metrics["mAP50_95"], "mAP50": result.metrics["mAP50"],
                     "drop": drop, "metrics_json": str(result.metrics_path)})
    width = max(len(r["format"]) for r in rows)
    for r in rows:
        log.info("%-*s  mAP50:95 %.4f  mAP50 %.4f  drop %.4f", width, r["format"], r["mAP50_95"] or 0.0,
                 r["mAP50"] or 0.0, r["drop"])
    worst = max(rows[1:], key=lambda r: r["drop"], default=None)
    if worst is not None and worst["drop"] > max_drop:
        raise ExportError(
            f"{files[worst['format']].name}: mAP50:95 {worst['mAP50_95']:.4f} on {split} is "
            f"{worst['drop']:.4f} below "
            f"PyTorch's {base['mAP50_95']:.4f} (export.max_map_drop {max_drop:g})",
            hint="export without --half/--simplify, or raise export.max_map_drop; nothing was written")
    return rows
