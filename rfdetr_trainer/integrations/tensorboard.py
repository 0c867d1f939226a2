"""TensorBoard prediction images, and the validation prediction grid shared with the ClearML callback.

Scalars reach TensorBoard through the ``TensorBoardLogger`` that ``services/train.py`` attaches; this module adds
a grid of validation images with ground truth (green) and predictions (red) every N epochs, written with the
logger's ``experiment.add_image`` under the tag ``predictions/valid``.

This module is the Lightning boundary for tracking: it imports ``pytorch_lightning`` at the top and is imported
only from the training code path (``make_callbacks`` below, ``integrations/clearml/callback.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytorch_lightning import Callback  # noqa: TID253 - see module docstring

from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)

GT_COLOR = (40, 220, 60)
PRED_COLOR = (235, 50, 50)
TAG = "predictions/valid"


def make_callbacks(*, every_n_epochs: int = 1, max_images: int = 8, score_threshold: float = 0.3) -> list[Any]:
    """Callbacks that add prediction images to the run's TensorBoard logger (rank 0 only).

    Pass the result to ``services.train.train(extra_callbacks=...)`` together with ``tensorboard=True``; when the
    trainer has no TensorBoard logger the callback does nothing.
    """
    return [TensorBoardPredictionImages(every_n_epochs=every_n_epochs, max_images=max_images,
                                        score_threshold=score_threshold)]


# --------------------------------------------------------------------------------------------- preview


class PredictionPreview:
    """Collects the first validation images' predictions of an epoch and draws them as one grid.

    Used from a callback's ``on_validation_batch_end`` (``collect``) and ``on_validation_epoch_end``
    (``grid``). Predictions come from ``RFDETRModelModule.validation_step`` (boxes in original pixels);
    images and ground truth are read back from the validation split's COCO file.
    """

    def __init__(self, *, max_images: int = 8, score_threshold: float = 0.3, tile: int = 256) -> None:
        self.max_images = max_images
        self.score_threshold = score_threshold
        self.tile = tile
        self._items: list[tuple[int, Any, Any, Any]] = []  # (image_id, boxes, scores, labels) on CPU

    def reset(self) -> None:
        self._items = []

    def collect(self, outputs: Any) -> None:
        """Keep predictions of this batch until ``max_images`` are held."""
        if len(self._items) >= self.max_images or not isinstance(outputs, dict):
            return
        results, targets = outputs.get("results") or [], outputs.get("targets") or []
        for result, target in zip(results, targets):
            if len(self._items) >= self.max_images:
                break
            image_id = target.get("image_id")
            if image_id is None:
                continue
            image_id = int(image_id.item() if hasattr(image_id, "item") else image_id)
            self._items.append((image_id, _cpu(result.get("boxes")), _cpu(result.get("scores")),
                                _cpu(result.get("labels"))))

    def grid(self, trainer: Any) -> Any | None:
        """An HxWx3 uint8 numpy grid of the collected images, or None when nothing can be drawn."""
        if not self._items:
            return None
        dataset = _val_dataset(trainer)
        if dataset is None:
            return None
        class_names = list(getattr(getattr(trainer, "datamodule", None), "class_names", None) or [])
        tiles = []
        for image_id, boxes, scores, labels in self._items:
            try:
                tiles.append(self._draw(dataset, image_id, boxes, scores, labels, class_names))
            except (OSError, KeyError, ValueError) as exc:
                log.debug("preview of image %s skipped: %s", image_id, exc)
        return _tile(tiles, self.tile) if tiles else None

    def _draw(self, dataset: Any, image_id: int, boxes: Any, scores: Any, labels: Any, names: list[str]) -> Any:
        from PIL import Image, ImageDraw

        coco = dataset.coco
        info = coco.imgs[image_id]
        image = Image.open(Path(dataset.root) / info["file_name"]).convert("RGB")
        draw = ImageDraw.Draw(image)
        cats = {c["id"]: c.get("name", str(c["id"])) for c in coco.dataset.get("categories", [])}
        for ann in coco.imgToAnns.get(image_id, []):
            x, y, w, h = ann["bbox"]
            draw.rectangle([x, y, x + w, y + h], outline=GT_COLOR, width=2)
            draw.text((x + 2, y + h - 12), str(cats.get(ann.get("category_id"), "")), fill=GT_COLOR)
        if boxes is not None and scores is not None:
            for box, score, label in zip(boxes.tolist(), scores.tolist(), (labels.tolist() if labels is not None
                                                                            else [None] * len(boxes))):
                if score < self.score_threshold:
                    continue
                name = names[label] if isinstance(label, int) and 0 <= label < len(names) else str(label)
                draw.rectangle(box, outline=PRED_COLOR, width=2)
                draw.text((box[0] + 2, box[1] + 1), f"{name} {score:.2f}", fill=PRED_COLOR)
        image.thumbnail((self.tile, self.tile))
        return image


def _cpu(value: Any) -> Any:
    return value.detach().float().cpu() if hasattr(value, "detach") and value.is_floating_point() else (
        value.detach().cpu() if hasattr(value, "detach") else value)


def _val_dataset(trainer: Any) -> Any | None:
    # Lightning's public ``val_dataloaders`` (a loader, or a list of them) holds the dataset rfdetr validates on.
    loaders = getattr(trainer, "val_dataloaders", None)
    loader = loaders[0] if isinstance(loaders, (list, tuple)) and loaders else loaders
    dataset = getattr(loader, "dataset", None)
    for _ in range(10):
        if hasattr(dataset, "coco") and hasattr(dataset, "root"):
            return dataset
        dataset = getattr(dataset, "dataset", None)
        if dataset is None:
            return None
    return None


def _tile(images: list[Any], tile: int) -> Any:
    import numpy as np

    from rfdetr_trainer.integrations.rfdetr.drawing import grid

    return np.asarray(grid(images, tile=tile, background=(0, 0, 0)), dtype=np.uint8)


class PredictionImagesBase(Callback):
    """Draws a prediction grid every ``every_n_epochs`` validation epochs and hands it to ``emit``."""

    def __init__(self, *, every_n_epochs: int = 1, max_images: int = 8, score_threshold: float = 0.3) -> None:
        super().__init__()
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.preview = PredictionPreview(max_images=max_images, score_threshold=score_threshold)

    def _due(self, trainer: Any) -> bool:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return False
        epoch = int(trainer.current_epoch) + 1
        last = isinstance(trainer.max_epochs, int) and epoch >= trainer.max_epochs
        return epoch % self.every_n_epochs == 0 or last or bool(getattr(trainer, "should_stop", False))

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.preview.reset()

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if self._due(trainer):
            self.preview.collect(outputs)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._due(trainer):
            return
        try:
            image = self.preview.grid(trainer)
            if image is not None:
                self.emit(trainer, image, int(trainer.current_epoch))
        except Exception as exc:  # a preview must never stop training
            log.warning("prediction images not written: %s: %s", type(exc).__name__, exc)
        finally:
            self.preview.reset()

    def emit(self, trainer: Any, image: Any, epoch: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class TensorBoardPredictionImages(PredictionImagesBase):
    """Writes the grid to every TensorBoard logger of the trainer (``add_image``, HWC, step = epoch)."""

    def emit(self, trainer: Any, image: Any, epoch: int) -> None:
        from pytorch_lightning.loggers import TensorBoardLogger

        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(TAG, image, global_step=epoch, dataformats="HWC")
                logger.experiment.flush()


# --------------------------------------------------------------------------------------------- evaluation


def write_evaluation_figures(log_dir: Path, figures: dict[str, Path], *, prefix: str, step: int = 0) -> list[str]:
    """Add an evaluation's PNG figures (confusion matrix, PR and F1 curves) to the run's TensorBoard log.

    Written with ``torch.utils.tensorboard.SummaryWriter`` into ``log_dir`` beside the training scalars; returns
    the tags written (``<prefix>/<figure name>``).
    """
    import numpy as np
    from PIL import Image
    from torch.utils.tensorboard import SummaryWriter

    tags = []
    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for name, path in figures.items():
            if not Path(path).is_file() or Path(path).suffix.lower() != ".png":
                continue
            with Image.open(path) as img:
                array = np.asarray(img.convert("RGB"))
            tag = f"{prefix}/{name}"
            writer.add_image(tag, array, global_step=step, dataformats="HWC")
            tags.append(tag)
    finally:
        writer.close()
    return tags
