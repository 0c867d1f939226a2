"""Metadata stored inside exported files, so an ONNX or TorchScript file runs without its checkpoint.

ONNX: ``metadata_props`` entries ``class_names`` (JSON list), ``resolution``, ``thresholds`` (JSON, class name ->
best-F1 confidence) and ``rfdetr_trainer`` (all of it, JSON, what ``inference.OnnxBackend`` reads). TorchScript:
the extra file ``rfdetr_trainer.json`` (``torch.jit.save(_extra_files=...)``). Files are rewritten through a
temporary sibling and a rename, after the exporter wrote them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import ExportError
from rfdetr_trainer.integrations.rfdetr.inference import METADATA_KEY


def stamp(path: Path, metadata: dict[str, Any]) -> Path:
    """Store ``metadata`` (class_names, resolution, means, stds, num_select, thresholds) in an exported file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.meta-tmp")
    try:
        if path.suffix.lower() == ".onnx":
            _stamp_onnx(path, tmp, metadata)
        else:
            _stamp_torchscript(path, tmp, metadata)
        os.replace(tmp, path)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{path}: could not store the model's metadata: {type(exc).__name__}: {exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _stamp_onnx(path: Path, tmp: Path, metadata: dict[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    entries = {
        METADATA_KEY: json.dumps(metadata),
        "class_names": json.dumps(metadata["class_names"]),
        "resolution": str(metadata["resolution"]),
        "thresholds": json.dumps(metadata.get("thresholds") or {}),
    }
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(tmp))


def _stamp_torchscript(path: Path, tmp: Path, metadata: dict[str, Any]) -> None:
    import torch

    module = torch.jit.load(str(path), map_location="cpu")
    torch.jit.save(module, str(tmp), _extra_files={f"{METADATA_KEY}.json": json.dumps(metadata)})


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` as a dict (without loading the weights into a session)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
