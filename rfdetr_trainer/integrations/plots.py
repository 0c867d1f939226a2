"""Figures of an evaluation and of a training run, drawn with matplotlib (imported inside each function).

Every function writes one PNG atomically and returns its path. The Agg backend is forced: these run on servers
without a display, and inside training processes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from rfdetr_trainer.fsutil import follow_umask

GT_COLOR = (40, 220, 60)
PRED_COLOR = (235, 50, 50)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        follow_umask(Path(tmp))  # mkstemp makes 0600; the renamed file gets the mode open() would give it
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _pyplot().close(fig)
    return path


def confusion_matrix_png(matrix: Any, labels: list[str], path: Path, *, normalized: bool = False,
                         title: str = "") -> Path:
    """A heat map of ``matrix`` (rows: true class, columns: predicted class) with each cell's value written in."""
    import numpy as np

    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=float)
    n = len(labels)
    side = max(4.0, 0.55 * n + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalized else max(1.0, matrix.max()))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("confusion matrix (normalized by true class)" if normalized else "confusion matrix"))
    if n <= 30:
        top = matrix.max() or 1.0
        for i in range(n):
            for j in range(n):
                value = matrix[i, j]
                if value:
                    text = f"{value:.2f}" if normalized else f"{int(value)}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=8,
                            color="white" if value > 0.6 * (1 if normalized else top) else "black")
    return _save(fig, path)


def curves_png(x: Any, per_class: Any, names: list[str], mean: Any, path: Path, *, xlabel: str, ylabel: str,
               title: str, mean_label: str = "all classes") -> Path:
    """One line per class (rows of ``per_class`` over ``x``; NaN rows skipped) plus a thick mean line."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    rows = np.asarray(per_class, dtype=float)
    for name, row in zip(names, rows):
        if np.isfinite(row).any():
            ax.plot(x, row, linewidth=1, label=name if len(names) <= 12 else None)
    ax.plot(x, mean, linewidth=3, color="#1f3b73", label=mean_label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def results_png(records: list[dict[str, Any]], path: Path) -> Path:
    """Losses, learning rates and mAP per epoch (one panel each) from ``metrics.jsonl`` records."""
    plt = _pyplot()
    epochs = [int(r.get("epoch", i)) + 1 for i, r in enumerate(records)]
    keys = sorted({k for r in records for k in r if isinstance(r.get(k), (int, float))})
    groups = {
        "loss": [k for k in keys if "loss" in k.lower()],
        "learning rate": [k for k in keys if k.lower().endswith("lr") or "/lr" in k.lower()],
        "mAP": [k for k in keys if "map" in k.lower() and k.count("/") <= 1],
    }
    groups = {title: ks for title, ks in groups.items() if ks}
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5 * max(1, len(groups)), 4), squeeze=False)
    for ax, (title, ks) in zip(axes[0], groups.items()):
        for key in ks[:10]:
            points = [(e, r[key]) for e, r in zip(epochs, records) if isinstance(r.get(key), (int, float))]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if not groups:
        axes[0][0].text(0.5, 0.5, "no metrics yet", ha="center", va="center")
    fig.suptitle("training results")
    return _save(fig, path)


def draw_boxes(image: Any, gt_boxes: Any, det_boxes: Any, det_text: list[str], path: Path,
               *, gt_text: list[str] | None = None, max_side: int = 1024) -> Path:
    """Save ``image`` (PIL) with ground truth in green and predictions in red (xyxy pixels), resized for viewing."""
    from PIL import ImageDraw

    image = image.convert("RGB")
    # Large photos are scaled down to ``max_side``; small ones up to 512 px so boxes and labels stay readable.
    scale = min(max_side, max(512, max(image.width, image.height))) / max(image.width, image.height)
    if scale != 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(image)
    width = max(1, round(max(image.width, image.height) / 400))
    def corners(box: Any) -> list[float]:
        x0, y0, x1, y1 = (float(v) * scale for v in box)
        return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]

    for k, box in enumerate(gt_boxes):
        xyxy = corners(box)
        draw.rectangle(xyxy, outline=GT_COLOR, width=width)
        if gt_text:
            draw.text((xyxy[0] + 2, xyxy[3] - 12), gt_text[k], fill=GT_COLOR)
    for k, box in enumerate(det_boxes):
        xyxy = corners(box)
        draw.rectangle(xyxy, outline=PRED_COLOR, width=width)
        draw.text((xyxy[0] + 2, max(0, xyxy[1] - 12)), det_text[k], fill=PRED_COLOR)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="JPEG", quality=88)
    os.replace(tmp, path)
    return path


def redraw_results(metrics_path: Path, path: Path) -> Path | None:
    """``results.png`` from a run's ``metrics.jsonl`` (None when it holds no record yet)."""
    import json

    records = []
    try:
        for line in Path(metrics_path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append(json.loads(line))
    except (OSError, ValueError):
        return None
    return results_png(records, path) if records else None
