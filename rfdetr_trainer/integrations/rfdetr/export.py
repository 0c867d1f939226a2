"""Export to ONNX (through rfdetr) and TorchScript (traced here: rfdetr 1.11 has none), then prove parity.

Parity: the exported model and PyTorch's eager model run on the same real, preprocessed image; every query's
boxes (normalised cxcywh) and class scores (sigmoid of the logits) must agree within a stated tolerance.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import ExportError
from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)

#: fp16 numerics differ from fp32 by design; the check still catches a broken graph.
HALF_ATOL = 5e-2
#: The highest-scoring queries (what a user's detections come from) must each agree within the tolerance.
TOP_K = 10
#: Share of all queries that must agree. The two-stage TopK over encoder proposals can swap a few near-tied
#: proposals at its cutoff between runtimes (seen: 2 of 300 on a trained Nano, ONNX Runtime vs PyTorch, fp32).
MIN_MATCHED = 0.98


@dataclass
class Parity:
    """How far an exported model is from PyTorch on one image.

    ``max_box_diff``/``max_score_diff`` are the worst differences over the PyTorch queries that found a
    counterpart within ``atol``, and over the ``TOP_K`` highest-scoring queries whether or not they did.
    """

    format: str
    image: str
    max_box_diff: float
    max_score_diff: float
    atol: float
    matched_fraction: float = 1.0

    @property
    def ok(self) -> bool:
        return (self.max_box_diff <= self.atol and self.max_score_diff <= self.atol
                and self.matched_fraction >= MIN_MATCHED)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "image": self.image, "max_box_diff": self.max_box_diff,
                "max_score_diff": self.max_score_diff, "matched_fraction": self.matched_fraction,
                "atol": self.atol, "ok": self.ok}


def preprocess(model: Any, image_path: Path, batch: int = 1) -> Any:
    """The input tensor rfdetr's predict builds: RGB, resized to the model's square resolution, normalised."""
    import numpy as np
    import torch
    from PIL import Image

    size = int(model.model_config.resolution)
    with Image.open(image_path) as img:
        rgb = img.convert("RGB").resize((size, size), Image.BILINEAR)
    arr = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(model.means, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(model.stds, dtype=torch.float32).view(3, 1, 1)
    return ((arr - mean) / std).unsqueeze(0).repeat(batch, 1, 1, 1).contiguous()


def reference_outputs(model: Any, x: Any) -> tuple[Any, Any]:
    """PyTorch eager boxes and scores for input ``x`` (CPU float32)."""
    import torch

    net = model.model.model
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(x.to(device))
    finally:
        net.train(was_training)
    return out["pred_boxes"].float().cpu(), out["pred_logits"].float().sigmoid().cpu()


def _compare(fmt: str, image: Path, ref: tuple[Any, Any], got: tuple[Any, Any], atol: float) -> Parity:
    """Match every PyTorch query to its closest exported query, then judge the matches.

    Queries are matched rather than compared index by index because the two-stage query selection (a TopK over
    encoder proposals) may order near-tied proposals differently between runtimes, and may swap a few at its
    cutoff; the predicted *set* is what a user gets. In fp32 the match is usually the identity.
    """
    import torch

    boxes, scores = (torch.as_tensor(got[0]).float(), torch.as_tensor(got[1]).float().sigmoid())
    if boxes.shape != ref[0].shape or scores.shape != ref[1].shape:
        raise ExportError(
            f"{fmt}: exported outputs have shapes {tuple(boxes.shape)}/{tuple(scores.shape)}, PyTorch "
            f"{tuple(ref[0].shape)}/{tuple(ref[1].shape)}"
        )
    box_diff = (ref[0][:, :, None, :] - boxes[:, None, :, :]).abs().amax(-1)  # batch x ref query x exported query
    score_diff = (ref[1][:, :, None, :] - scores[:, None, :, :]).abs().amax(-1)
    match = torch.maximum(box_diff, score_diff).argmin(-1, keepdim=True)
    box = box_diff.gather(-1, match).squeeze(-1)  # batch x ref query
    score = score_diff.gather(-1, match).squeeze(-1)
    agree = (box <= atol) & (score <= atol)
    judged = agree.clone()
    top = ref[1].amax(-1).topk(min(TOP_K, ref[1].shape[1]), dim=-1).indices
    judged.scatter_(1, top, True)  # the top queries count whatever their difference
    return Parity(fmt, str(image), float(box[judged].max()), float(score[judged].max()), atol,
                  float(agree.float().mean()))


def export_onnx(model: Any, out_dir: Path, *, opset: int, dynamic_batch: bool, simplify: bool, half: bool) -> Path:
    """Write ``model.onnx`` (``model_fp16.onnx`` with ``half``) into ``out_dir`` through rfdetr's exporter."""
    with tempfile.TemporaryDirectory(prefix=".onnx-", dir=out_dir) as tmp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                path = Path(model.export(output_dir=tmp, format="onnx", opset_version=opset,
                                         dynamic_batch=dynamic_batch, verbose=False, output_name="model"))
        except Exception as exc:
            raise ExportError(f"onnx export failed: {type(exc).__name__}: {str(exc).strip()[:300]}") from exc
        import onnx

        graph = onnx.load(str(path))
        if simplify:
            graph = _simplify(graph)
        if half:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            graph = convert_float_to_float16(graph, keep_io_types=True)
        final = out_dir / ("model_fp16.onnx" if half else "model.onnx")
        onnx.save(graph, str(path))
        shutil.move(str(path), final)
    return final


def _simplify(graph: Any) -> Any:
    try:
        from onnxsim import simplify as onnxsim_simplify
    except ImportError:
        try:
            import onnxslim
        except ImportError:
            raise ExportError("--simplify needs onnxsim or onnxslim", hint="pip install onnxsim") from None
        return onnxslim.slim(graph)
    simplified, ok = onnxsim_simplify(graph)
    if not ok:
        raise ExportError("onnx simplification produced a graph that failed onnxsim's own check")
    return simplified


def check_onnx(path: Path, model: Any, image: Path, *, atol: float, batch: int = 1) -> Parity:
    """Run the ONNX file with onnxruntime on ``image`` and compare with PyTorch."""
    import onnxruntime as ort

    x = preprocess(model, image, batch)
    ref = reference_outputs(model, x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = session.run(None, {name: x.numpy()})
    return _compare("onnx", image, ref, (outputs[0], outputs[1]), atol)


def export_torchscript(model: Any, out_dir: Path, *, half: bool) -> Path:
    """Trace rfdetr's export-mode graph with ``torch.jit.trace`` and save ``model.torchscript``."""
    import torch
    from rfdetr.export.prepare import prepare_export_graph

    size = int(model.model_config.resolution)
    net = copy.deepcopy(model.model.model).cpu()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = prepare_export_graph(net, model.model_config, shape=(size, size), device="cpu")
            module, example = graph.model.eval(), graph.input_tensors
            if callable(getattr(module, "export", None)):
                module.export()  # forward_export returns a (boxes, logits) tuple that tracing can type
            if half:
                module, example = module.half(), example.half()
            with torch.no_grad():
                traced = torch.jit.trace(module, example, check_trace=False, strict=False)
    except Exception as exc:
        raise ExportError(f"torchscript export failed: {type(exc).__name__}: {str(exc).strip()[:300]}") from exc
    final = out_dir / ("model_fp16.torchscript" if half else "model.torchscript")
    tmp = final.with_name(final.name + ".tmp")
    traced.save(str(tmp))
    tmp.replace(final)
    return final


def check_torchscript(path: Path, model: Any, image: Path, *, atol: float, half: bool, batch: int = 1) -> Parity:
    """Run the TorchScript file on ``image`` and compare with PyTorch."""
    import torch

    x = preprocess(model, image, batch)
    ref = reference_outputs(model, x)
    module = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.no_grad():
        out = module(x.half() if half else x)
    if isinstance(out, dict):
        out = (out["pred_boxes"], out["pred_logits"])
    return _compare("torchscript", image, ref, (out[0], out[1]), atol)
