"""Fine-tune from a previous run keeping the classes it knows: the class head mapped row by row, by class name.

rfdetr builds its training module from ``ModelConfig.pretrain_weights``, so the mapping is written as a checkpoint
that rfdetr loads like any other: PREV's tensors where the architecture matches, and in every class-logits layer
(``class_embed`` and the two-stage ``enc_out_class_embed.N``) PREV's row for each class both runs share, the
freshly initialised row (rfdetr's own initialisation, with ``--pretrain-weights`` applied) for each new class.
Classes PREV had that the new dataset lacks are left out.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import CheckpointError, DatasetError

#: State-dict keys of the class-logits layers; their first dimension is num_classes + 1.
CLASS_HEAD = re.compile(r"(^|\.|_)class_embed(\.\d+)?\.(weight|bias)$")


@dataclass
class ClassMapping:
    """How PREV's classes map onto the new dataset's (by name)."""

    source: str
    kept: dict[str, list[int]] = field(default_factory=dict)  # name -> [row in PREV, row in the new head]
    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    copied_tensors: int = 0
    fresh_tensors: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the manifest and ClearML."""
        return {"source": self.source, "kept": self.kept, "new": self.new, "removed": self.removed,
                "copied_tensors": self.copied_tensors, "fresh_tensors": self.fresh_tensors}

    def summary(self) -> str:
        """One line for the log."""
        return (f"init-from {Path(self.source).name}: {len(self.kept)} classes kept "
                f"({', '.join(self.kept) or '-'}), {len(self.new)} new ({', '.join(self.new) or '-'}), "
                f"{len(self.removed)} removed ({', '.join(self.removed) or '-'})")


def dataset_class_names(dataset_dir: Path) -> list[str]:
    """The train split's class names in rfdetr's label order (grouping-only parent categories dropped)."""
    from rfdetr.datasets.coco import filter_parent_categories

    path = Path(dataset_dir) / "train" / "_annotations.coco.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: can't read the train annotations: {exc}") from exc
    annotated = {int(a["category_id"]) for a in data.get("annotations", []) if "category_id" in a}
    return [str(c["name"]) for c in filter_parent_categories(list(data.get("categories", [])), annotated)]


def load_previous(path: Path) -> tuple[dict[str, Any], list[str]]:
    """PREV's model state dict and its class names (stored by rfdetr in the checkpoint's ``args``).

    Raises:
        CheckpointError: unreadable, no weights, or no class names (not a checkpoint of a training run).
    """
    import torch

    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file
        raise CheckpointError(f"model.init_from: {path} could not be loaded: {str(exc).splitlines()[0][:200]}") \
            from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"model.init_from: {path} is not an RF-DETR checkpoint")
    state = checkpoint.get("model")
    if state is None and "state_dict" in checkpoint:  # a Lightning .ckpt
        state = {k[len("model."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    args = checkpoint.get("args") or checkpoint.get("hyper_parameters") or {}
    names = args.get("class_names") if isinstance(args, dict) else getattr(args, "class_names", None)
    if not state or "class_embed.bias" not in state:
        raise CheckpointError(f"model.init_from: {path} holds no RF-DETR detection weights")
    if not names:
        raise CheckpointError(f"model.init_from: {path} records no class names",
                              hint="pass a checkpoint_best_*.pth written by 'rfdetr-trainer train'")
    return state, [str(n) for n in names]


def map_state(previous: dict[str, Any], previous_names: list[str], fresh: dict[str, Any], new_names: list[str],
              *, source: str) -> tuple[dict[str, Any], ClassMapping]:
    """The state dict to start from: ``fresh`` overlaid with PREV's tensors, class-head rows mapped by name."""
    prev_row = {name: i for i, name in enumerate(previous_names)}
    mapping = ClassMapping(source=source)
    mapping.kept = {n: [prev_row[n], i] for i, n in enumerate(new_names) if n in prev_row}
    mapping.new = [n for n in new_names if n not in prev_row]
    mapping.removed = [n for n in previous_names if n not in set(new_names)]
    merged: dict[str, Any] = {}
    for key, tensor in fresh.items():
        old = previous.get(key)
        if CLASS_HEAD.search(key) and old is not None and old.shape[1:] == tensor.shape[1:]:
            out = tensor.clone()
            for prev_index, new_index in mapping.kept.values():
                out[new_index] = old[prev_index]
            merged[key] = out
            mapping.copied_tensors += 1
        elif old is not None and old.shape == tensor.shape:
            merged[key] = old.clone()
            mapping.copied_tensors += 1
        else:
            merged[key] = tensor.clone()
            mapping.fresh_tensors += 1
    return merged, mapping


def write_init_checkpoint(init_from: Path, fresh: dict[str, Any], new_names: list[str], out: Path) -> ClassMapping:
    """Write the mapped checkpoint rfdetr will load as ``pretrain_weights`` (atomically) and return the mapping."""
    import torch

    previous, previous_names = load_previous(init_from)
    merged, mapping = map_state(previous, previous_names, fresh, new_names, source=str(init_from))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    torch.save({"model": merged, "args": {"class_names": list(new_names)}}, str(tmp))
    tmp.replace(out)
    return mapping
