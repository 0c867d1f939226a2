"""Checks on checkpoint files before torch is asked to load them."""

from __future__ import annotations

import zipfile
from pathlib import Path

from rfdetr_trainer.errors import CheckpointError

#: Files rfdetr writes in a run folder, best first.
BEST_NAMES = ("checkpoint_best_total.pth", "checkpoint_best_ema.pth", "checkpoint_best_regular.pth", "last_ema.pth")


def check_checkpoint(path: Path, *, what: str = "checkpoint") -> Path:
    """Return ``path`` if it looks like a torch checkpoint, else raise CheckpointError naming it.

    A run folder is accepted too: its best checkpoint is used.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        for name in BEST_NAMES:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: folder holds no rfdetr checkpoint ({', '.join(BEST_NAMES)})")
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} does not exist")
    # torch.save writes a zip archive since torch 1.6; older files start with a pickle protocol byte.
    with path.open("rb") as fh:
        head = fh.read(2)
    if not (zipfile.is_zipfile(path) or head[:1] == b"\x80"):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint", hint="pass a .pth or .ckpt written by training")
    return path


def find_resume_checkpoint(resume: Path) -> Path:
    """The Lightning checkpoint to resume from: ``resume`` itself, or ``last.ckpt`` in a run folder."""
    resume = Path(resume).expanduser()
    for candidate in (resume, resume / "last.ckpt", resume / "checkpoints" / "last.ckpt"):
        if candidate.is_file():
            return check_checkpoint(candidate, what="resume checkpoint")
    raise CheckpointError(f"{resume}: no last.ckpt to resume from", hint="pass the last.ckpt of an interrupted run")
