"""Checks that run before a model is loaded (5–10 s): inputs readable, outputs writable, nothing half-done.

``predict`` and ``export`` call these first so that a typo in a path fails at once with one line, and leaves
nothing on disk.
"""

from __future__ import annotations

from pathlib import Path

from rfdetr_trainer.errors import ConfigError, DatasetError, OutputError
from rfdetr_trainer.fsutil import check_writable


def image_problem(path: Path) -> str | None:
    """Why ``path`` is not an image a model can read (missing, a folder, not an image, truncated), or None."""
    path = Path(path)
    if not path.exists():
        return "does not exist"
    if not path.is_file():
        return "is not a file"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.verify()  # reads the structure (and PNG chunks) without decoding every pixel
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return f"is not a readable image ({type(exc).__name__})"
    return None


def check_sample_image(image: Path, flag: str = "--image") -> Path:
    """The image given for a check, or ConfigError (exit 3) naming the flag and the file."""
    problem = image_problem(image)
    if problem:
        raise ConfigError(f"{flag} {image}: {problem}", hint="pass a JPEG or PNG image")
    return Path(image)


def check_output_folder(folder: Path, marker: str, what: str) -> None:
    """``folder`` can be created or replaced: it is absent, empty, or an earlier output holding ``marker``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / marker).exists():
        raise OutputError(f"{folder}: folder exists, is not empty and is not {what}",
                          hint="choose another --output or remove the folder")
    check_writable(folder)


def check_prediction_inputs(images: list[Path]) -> None:
    """Every input image is readable, or DatasetError (exit 4) naming the first that is not and the count."""
    bad = [(p, why) for p in images if (why := image_problem(p))]
    if bad:
        more = f" ({len(bad)} of {len(images)} inputs are unreadable)" if len(bad) > 1 else ""
        raise DatasetError(f"{bad[0][0]}: {bad[0][1]}{more}",
                           hint="remove or replace it; predict runs only on readable images")
