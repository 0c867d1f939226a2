"""Run a trained model on images: a checkpoint (PyTorch), an exported ONNX file (ONNX Runtime) or TorchScript.

Every backend gets the same input (``preprocess``: RGB after the EXIF orientation, resized to the model's square
resolution with torch's antialias-free bilinear resize, as rfdetr's ``predict`` does, then normalised) and its raw
outputs (normalised cxcywh boxes and class logits per query) go through one decoder (``decode``): sigmoid over
the *trained* classes only (the head has more logits than classes), top-k over query x class as rfdetr's
``PostProcess``, boxes scaled to the original image. Images are decoded on worker threads while the model runs.

Segmentation models (rfdetr's ``RFDETRSeg*``: a ``segmentation_head``) also output one mask-logit plane per query
(B x Q x Hm x Wm, a quarter of the input resolution); the selected queries' planes travel in
``ImagePrediction.masks`` at that low resolution, and ``ImagePrediction.mask(i)`` resizes one to the image as
rfdetr's ``PostProcess`` does (bilinear, ``align_corners=False``, logit > 0), so no caller holds N full-size masks.

``detect`` is the public entry point for library callers (the CVAT pre-annotation loop): a list of images in, one
``ImagePrediction`` per image out.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rfdetr_trainer.errors import CheckpointError, PredictionError
from rfdetr_trainer.integrations.rfdetr.checkpoint import check_checkpoint

#: Key of the JSON metadata the project stores in exported files (ONNX ``metadata_props``, TorchScript extra file).
METADATA_KEY = "rfdetr_trainer"
IMAGENET_MEANS = [0.485, 0.456, 0.406]
IMAGENET_STDS = [0.229, 0.224, 0.225]
ONNX_SUFFIXES = {".onnx"}
TORCHSCRIPT_SUFFIXES = {".torchscript", ".ts", ".jit"}


@dataclass
class ImagePrediction:
    """Detections for one image, in pixels of the image as displayed (EXIF orientation applied)."""

    path: Path | None
    width: int
    height: int
    boxes_xyxy: np.ndarray  # N x 4 float32
    scores: np.ndarray  # N float32
    labels: np.ndarray  # N int64, index into the backend's class_names (trained classes only)
    image: Any = field(default=None, repr=False)  # the decoded PIL image, when kept
    #: Segmentation models only: N x Hm x Wm float32 mask logits at the model's mask resolution (see ``mask``).
    masks: np.ndarray | None = field(default=None, repr=False)

    def _select(self, keep: np.ndarray) -> ImagePrediction:
        return ImagePrediction(self.path, self.width, self.height, self.boxes_xyxy[keep], self.scores[keep],
                               self.labels[keep], self.image, None if self.masks is None else self.masks[keep])

    def above(self, threshold: float | dict[int, float]) -> ImagePrediction:
        """The detections scoring more than ``threshold`` (one value, or per class label)."""
        if isinstance(threshold, dict):
            limits = np.array([threshold.get(int(c), 0.5) for c in self.labels], dtype=np.float32)
            keep = self.scores > limits
        else:
            keep = self.scores > threshold
        return self._select(keep)

    def nms(self, iou_threshold: float) -> ImagePrediction:
        """Class-agnostic non-maximum suppression at ``iou_threshold`` (1.0 or more keeps everything)."""
        if iou_threshold >= 1.0 or len(self.scores) < 2:
            return self
        return self._select(nms(self.boxes_xyxy, self.scores, iou_threshold))

    def mask(self, i: int) -> np.ndarray | None:
        """Detection ``i``'s mask at the image size (H x W bool), or None for a detection model.

        Resized as rfdetr's ``PostProcess`` does: the logits bilinearly (``align_corners=False``), then > 0. The
        model saw the image squashed to a square, so stretching the mask back to H x W undoes exactly that.
        """
        if self.masks is None:
            return None
        import torch
        import torch.nn.functional as F

        logits = torch.from_numpy(np.ascontiguousarray(self.masks[i], dtype=np.float32))[None, None]
        resized = F.interpolate(logits, size=(self.height, self.width), mode="bilinear", align_corners=False)
        return (resized[0, 0] > 0.0).numpy()

    def polygon(self, i: int) -> list[float] | None:
        """Detection ``i``'s mask as its largest outer contour, flat x, y, … in pixels; None when it has no
        mask or the mask holds no contour of at least 3 points."""
        mask = self.mask(i)
        return None if mask is None else mask_polygon(mask)


# ------------------------------------------------------------------------------------------------ images


def open_image(image: Any) -> Any:
    """A PIL RGB image from a path or PIL image, turned upright by its EXIF orientation.

    Cameras store the pixels unrotated and the orientation in EXIF; every viewer (and the annotation tools the
    boxes came from) shows the rotated image, so the model must see and the boxes must refer to that one.
    """
    from PIL import Image, ImageOps

    if isinstance(image, Image.Image):
        img = ImageOps.exif_transpose(image)
    else:
        try:
            with Image.open(image) as raw:
                img = ImageOps.exif_transpose(raw)  # a loaded copy, rotated when EXIF says so
        except (OSError, ValueError) as exc:
            raise PredictionError(f"{image}: cannot be read as an image ({exc})") from None
    return img if img.mode == "RGB" else img.convert("RGB")


def preprocess(image: Any, resolution: int, means: list[float], stds: list[float]) -> Any:
    """The model input for one PIL image: a 3 x R x R float32 tensor, exactly as rfdetr's ``predict`` builds it."""
    import torch
    import torchvision.transforms.functional as F

    arr = np.asarray(image, dtype=np.uint8)
    chw = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).to(torch.float32)
    chw.div_(torch.tensor(255.0))
    resized = F.resize(chw, [resolution, resolution], antialias=False)
    return F.normalize(resized, means, stds)


def mask_polygon(mask: np.ndarray, *, tolerance: float = 0.5) -> list[float] | None:
    """The largest outer contour of a binary H x W mask as a flat x, y, … list in pixels (None when no contour
    has 3 points). Holes and smaller islands are dropped: an annotation tool's polygon is one outline.

    ``tolerance`` (pixels) simplifies the outline (Douglas-Peucker), so a smooth blob does not become a polygon
    with a vertex per boundary pixel; a simplification that leaves under 3 points falls back to the full outline.
    """
    import cv2

    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    contours = [c for c in contours if len(c) >= 3]
    if not contours:
        return None
    largest = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
    simple = cv2.approxPolyDP(largest, tolerance, True) if tolerance > 0 else largest
    points = simple if len(simple) >= 3 else largest
    return [float(v) for v in points.reshape(-1)]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy class-agnostic NMS, in descending score."""
    from rfdetr_trainer.evaluation.matching import iou_matrix

    order = np.argsort(-scores, kind="stable")
    ious = iou_matrix(boxes[order], boxes[order])
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(order[i])
        suppressed |= ious[i] > iou_threshold
    return np.array(keep, dtype=np.int64)


def decode(boxes: np.ndarray, logits: np.ndarray, sizes: list[tuple[int, int]], *, num_classes: int,
           threshold: float, num_select: int = 300) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image (xyxy pixels, scores, labels) from raw outputs: B x Q x 4 cxcywh and B x Q x C logits.

    Only the first ``num_classes`` logits are the trained classes; the rest (rfdetr's head keeps spare slots)
    are dropped *before* the top-k, so no detection carries a class the model was not trained on and the top-k
    is not spent on slots that mean nothing. Order and ties follow rfdetr's ``PostProcess``: descending score,
    then ascending query x class index; kept are scores above ``threshold``.
    """
    return [(xyxy, scores, labels) for xyxy, scores, labels, _query in
            _decode(boxes, logits, sizes, num_classes=num_classes, threshold=threshold, num_select=num_select)]


def _decode(boxes: np.ndarray, logits: np.ndarray, sizes: list[tuple[int, int]], *, num_classes: int,
            threshold: float, num_select: int = 300) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``decode`` plus each detection's query index (which row of the masks it owns)."""
    logits = np.asarray(logits, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float32)
    k = min(num_classes, logits.shape[-1]) if num_classes else logits.shape[-1]
    prob = 1.0 / (1.0 + np.exp(-logits[..., :k]))
    flat = prob.reshape(prob.shape[0], -1)
    n = min(num_select, flat.shape[1])
    out = []
    for b, (height, width) in enumerate(sizes):
        order = np.argsort(-flat[b], kind="stable")[:n]
        scores = flat[b, order]
        keep = scores > threshold
        order, scores = order[keep], scores[keep]
        query, labels = order // k, (order % k).astype(np.int64)
        cx, cy, w, h = boxes[b, query].T
        xyxy = np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=1)
        scale = np.array([width, height, width, height], dtype=np.float32)
        xyxy = np.minimum(np.maximum(xyxy * scale, 0.0), scale)
        out.append((xyxy.astype(np.float32), scores.astype(np.float32), labels, query))
    return out


# ------------------------------------------------------------------------------------------------ backends


class Backend:
    """A model that maps a B x 3 x R x R float32 batch to (B x Q x 4 boxes, B x Q x C logits) numpy arrays, and a
    segmentation model also to B x Q x Hm x Wm mask logits (``outputs``)."""

    kind = "base"

    def __init__(self, *, class_names: list[str], resolution: int, means: list[float] | None = None,
                 stds: list[float] | None = None, num_select: int = 300, thresholds: dict[str, float] | None = None,
                 max_batch: int | None = None, source: Path | None = None, masks: bool = False) -> None:
        self.class_names = list(class_names)
        self.resolution = int(resolution)
        self.means = list(means or IMAGENET_MEANS)
        self.stds = list(stds or IMAGENET_STDS)
        self.num_select = int(num_select)
        self.thresholds = dict(thresholds or {})
        self.max_batch = max_batch
        self.source = source
        self.has_masks = bool(masks)  # a segmentation model: outputs() returns mask logits

    def forward(self, batch: Any) -> tuple[np.ndarray, np.ndarray]:
        """(boxes, logits) for the batch."""
        boxes, logits, _masks = self.outputs(batch)
        return boxes, logits

    def outputs(self, batch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(boxes, logits, mask logits or None) for the batch. A subclass implements this or ``forward``."""
        if type(self).forward is Backend.forward:  # pragma: no cover - abstract
            raise NotImplementedError
        boxes, logits = self.forward(batch)
        return boxes, logits, None

    def metadata(self) -> dict[str, Any]:
        """What an exported file must carry to be run like this model (``masks`` only for segmentation models,
        so a detection model's metadata is what it always was)."""
        meta = {"class_names": self.class_names, "resolution": self.resolution, "means": self.means,
                "stds": self.stds, "num_select": self.num_select, "thresholds": self.thresholds}
        if self.has_masks:
            meta["masks"] = True
        return meta


class TorchBackend(Backend):
    """An rfdetr model in PyTorch (a loaded checkpoint or the model training just produced)."""

    kind = "pytorch"

    def __init__(self, model: Any, **kwargs: Any) -> None:
        config = model.model_config
        super().__init__(class_names=list(getattr(model, "class_names", None) or []),
                         resolution=int(model.model.resolution), means=list(model.means), stds=list(model.stds),
                         num_select=int(getattr(config, "num_select", 300) or 300),
                         masks=bool(getattr(config, "segmentation_head", False)), **kwargs)
        self.model = model
        self.net = model.model.model
        self.device = model.model.device

    def outputs(self, batch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        import torch

        self.net.eval()
        with torch.inference_mode():
            out = self.net(batch.to(self.device))
        if isinstance(out, tuple):  # an export-mode module: (boxes, logits[, masks]), as rfdetr's predict reads it
            out = dict(zip(("pred_boxes", "pred_logits", "pred_masks"), out))
        masks = out.get("pred_masks") if self.has_masks else None
        return (out["pred_boxes"].float().cpu().numpy(), out["pred_logits"].float().cpu().numpy(),
                None if masks is None else masks.float().cpu().numpy())


class TorchScriptBackend(Backend):
    """A ``model.torchscript`` written by ``export`` (``torch.jit.load``)."""

    kind = "torchscript"

    def __init__(self, path: Path, device: str = "cpu") -> None:
        import torch

        extra = {f"{METADATA_KEY}.json": ""}
        try:
            self.module = torch.jit.load(str(path), map_location=device, _extra_files=extra).eval()
        except Exception as exc:
            raise CheckpointError(f"{path}: not a loadable TorchScript file: {str(exc).strip()[:200]}") from exc
        meta = _parse_metadata(extra[f"{METADATA_KEY}.json"], path)
        self.device = device
        self.half = any(p.dtype == torch.float16 for p in self.module.parameters())
        super().__init__(**meta, source=Path(path))

    def outputs(self, batch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        import torch

        with torch.inference_mode():
            x = batch.to(self.device)
            out = self.module(x.half() if self.half else x)
        if isinstance(out, dict):
            out = (out["pred_boxes"], out["pred_logits"], *([out["pred_masks"]] if "pred_masks" in out else []))
        # A traced tuple has no names, and a keypoint model's third output is 4-D too: the third output is read
        # as masks only when the file's metadata says the model is a segmentation model (export records it). With
        # rfdetr 1.11 tracing a segmentation model fails (its head calls a Python autograd function), so today
        # every TorchScript file is a detection model's; this keeps a future one's masks.
        masks = out[2].float().cpu().numpy() if self.has_masks and len(out) > 2 else None
        return out[0].float().cpu().numpy(), out[1].float().cpu().numpy(), masks


class OnnxBackend(Backend):
    """A ``model.onnx`` written by ``export``, run by ONNX Runtime (CUDA execution provider where available)."""

    kind = "onnx"

    def __init__(self, path: Path, device: str = "auto") -> None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:
            raise CheckpointError(f"{path}: not a loadable ONNX model: {str(exc).strip()[:200]}") from exc
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY, "")
        shape = self.session.get_inputs()[0].shape
        meta = _parse_metadata(raw, path, input_shape=shape)
        self.input_name = self.session.get_inputs()[0].name
        self.input_type = self.session.get_inputs()[0].type
        fixed = shape[0] if isinstance(shape[0], int) else None
        # rfdetr's exporter names a segmentation model's outputs dets, labels, masks (a keypoint model's third is
        # "keypoints"), so the graph itself says whether masks come out, whatever the metadata holds.
        names = [o.name for o in self.session.get_outputs()]
        self.mask_output = names.index("masks") if "masks" in names else None
        meta["masks"] = self.mask_output is not None
        super().__init__(**meta, source=Path(path), max_batch=fixed)

    def outputs(self, batch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        x = batch.numpy() if hasattr(batch, "numpy") else np.asarray(batch)
        if "float16" in self.input_type:
            x = x.astype(np.float16)
        outputs = self.session.run(None, {self.input_name: x})
        masks = None if self.mask_output is None else np.asarray(outputs[self.mask_output], dtype=np.float32)
        return np.asarray(outputs[0], dtype=np.float32), np.asarray(outputs[1], dtype=np.float32), masks


def _parse_metadata(raw: str, path: Path, *, input_shape: list[Any] | None = None) -> dict[str, Any]:
    """Backend keyword arguments from an exported file's metadata (or what its input shape tells)."""
    meta: dict[str, Any] = {}
    if raw:
        try:
            meta = json.loads(raw)
        except ValueError:
            raise CheckpointError(f"{path}: metadata '{METADATA_KEY}' is not JSON") from None
    resolution = meta.get("resolution")
    if resolution is None and input_shape and isinstance(input_shape[-1], int):
        resolution = input_shape[-1]
    if resolution is None:
        raise CheckpointError(f"{path}: no resolution in its metadata or input shape",
                              hint="export it again with rfdetr-trainer export")
    if not meta.get("class_names"):
        raise CheckpointError(f"{path}: carries no class names (not exported by rfdetr-trainer export)",
                              hint="export it again with rfdetr-trainer export, which records them")
    return {"class_names": meta["class_names"], "resolution": int(resolution), "means": meta.get("means"),
            "stds": meta.get("stds"), "num_select": int(meta.get("num_select", 300)),
            "thresholds": meta.get("thresholds") or {}, "masks": bool(meta.get("masks", False))}


def load_model(checkpoint: Path) -> Any:
    """An rfdetr model restored from a training checkpoint (the class is read from the file).

    Raises:
        CheckpointError: the file is missing, not a checkpoint, or not an rfdetr checkpoint.
    """
    path = check_checkpoint(checkpoint)
    from rfdetr_trainer.integrations.rfdetr.trainer import quiet_libraries

    quiet_libraries()
    from rfdetr.detr import RFDETR

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return RFDETR.from_checkpoint(str(path), trust_checkpoint=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: not a loadable rfdetr checkpoint: {first[:200]}") from exc


def load_backend(model: Path | str, *, device: str = "auto") -> Backend:
    """The backend for a checkpoint (``.pth``, a run folder), ``model.onnx`` or ``model.torchscript``."""
    path = Path(model)
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES or suffix in TORCHSCRIPT_SUFFIXES:
        if not path.is_file():
            raise CheckpointError(f"{path}: model file does not exist")
        if suffix in ONNX_SUFFIXES:
            return OnnxBackend(path, device=device)
        return TorchScriptBackend(path, device="cpu" if device in ("auto", "cpu") else device)
    return TorchBackend(load_model(path), source=path)


def as_backend(model: Any) -> Backend:
    """``model`` if it is a Backend, else the PyTorch backend of an rfdetr model object."""
    return model if isinstance(model, Backend) else TorchBackend(model)


# ------------------------------------------------------------------------------------------------ running


def predict_images(model: Any, images: Iterable[Any], *, threshold: float = 0.001, batch_size: int = 4,
                   workers: int = 2, keep_images: bool = False) -> Iterator[ImagePrediction]:
    """Run ``model`` (a Backend or an rfdetr model) over ``images`` (paths or PIL images), in input order.

    Images are decoded and preprocessed on ``workers`` threads (PIL and torch release the GIL) while the model
    runs the previous batch. Detections above ``threshold`` are returned, before any NMS.
    """
    import torch

    backend = as_backend(model)
    batch_size = max(1, min(batch_size, backend.max_batch or batch_size))
    num_classes = len(backend.class_names)

    def load(item: Any) -> tuple[Any, Any, Any]:
        img = open_image(item)
        return item, img, preprocess(img, backend.resolution, backend.means, backend.stds)

    items = list(images)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        pending = [pool.submit(load, item) for item in items[:2 * batch_size]]
        queued = len(pending)
        while pending:
            chunk, pending = pending[:batch_size], pending[batch_size:]
            more = items[queued:queued + batch_size]
            pending.extend(pool.submit(load, item) for item in more)
            queued += len(more)
            loaded = [f.result() for f in chunk]
            batch = torch.stack([x for _, _, x in loaded])
            boxes, logits, masks = backend.outputs(batch)
            sizes = [(img.height, img.width) for _, img, _ in loaded]
            decoded = _decode(boxes, logits, sizes, num_classes=num_classes, threshold=threshold,
                              num_select=backend.num_select)
            for b, ((item, img, _), (xyxy, scores, labels, query)) in enumerate(zip(loaded, decoded)):
                path = Path(item) if isinstance(item, (str, Path)) else None
                yield ImagePrediction(path, img.width, img.height, xyxy, scores, labels,
                                      img if keep_images else None, None if masks is None else masks[b, query])


def detect(model: Any, images: list[Any], *, threshold: float = 0.5, iou_threshold: float = 1.0,
           batch_size: int = 4) -> list[ImagePrediction]:
    """Detections for each image of ``images`` (paths or PIL images), for library callers.

    Args:
        model: a Backend (``load_backend`` of a checkpoint, ONNX or TorchScript file) or an rfdetr model.
        images: paths or PIL images; EXIF orientation is applied, boxes refer to the upright image.
        threshold: keep detections scoring more than this.
        iou_threshold: class-agnostic NMS IoU; 1.0 (default) applies none, as rfdetr's ``predict``.
        batch_size: images per forward pass.

    Returns:
        One ImagePrediction per image, in order: ``boxes_xyxy`` in pixels, ``scores``, ``labels`` indexing
        the backend's ``class_names`` (only trained classes).
    """
    return [p.nms(iou_threshold) for p in predict_images(model, images, threshold=threshold,
                                                          batch_size=batch_size)]
