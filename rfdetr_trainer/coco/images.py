"""Image files as a decoder sees them: header size, EXIF orientation, whether the pixels decode.

Pillow is the judge, not a byte heuristic: phone "motion photos" and many cameras append data after the JPEG
end marker (``FFD9``), and such files decode fine. ``Image.open`` reads only the header (size, format, EXIF);
the decode check uses Pillow's JPEG draft mode (the decoder scales by 1/8 while it reads every byte of the
entropy-coded data), which finds a cut-off file as surely as a full decode at a fraction of its cost.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: EXIF orientations that swap width and height (rotations by 90 or 270 degrees, with or without a mirror).
SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_ORIENTATION_TAG = 0x0112
#: Threads decoding at once; Pillow releases the GIL while it decodes.
WORKERS = min(8, os.cpu_count() or 1)


@dataclass(frozen=True)
class ImageProblem:
    """Why an image cannot be used as the JSON describes it.

    Attributes:
        code: ``image_unreadable``, ``image_truncated``, ``image_size_mismatch`` or ``exif_rotated``.
        message: one line naming the file.
        orientation: the EXIF orientation (1 when absent).
    """

    code: str
    message: str
    orientation: int = 1


def _orientation(img: Any) -> int:
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a malformed EXIF block is not a broken image; Pillow reads such files fine
        return 1
    return value if isinstance(value, int) else 1


#: What a decoder says about one file, independent of any annotation: ``(fault, detail, width, height,
#: orientation)``; ``fault`` is ``""`` (decodes), ``image_unreadable`` or ``image_truncated``, and ``detail`` the
#: message after the file's name. Plain data, so the fetch journal can store it (see ``coco/image_probe.py``).
Probe = tuple[str, str, int, int, int]


def probe_image(fh: Any, *, decode: bool = True) -> Probe:
    """Open the image in file object ``fh`` and, with ``decode``, decode its pixels (JPEG in draft mode)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(fh) as img:
            real, fmt, orientation = img.size, img.format, _orientation(img)
            if decode:
                if fmt == "JPEG":
                    img.draft(img.mode, (max(1, real[0] // 8), max(1, real[1] // 8)))
                img.load()
    except UnidentifiedImageError:
        return ("image_unreadable", " is not an image Pillow can identify", 0, 0, 1)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        text = str(exc).strip() or type(exc).__name__
        code = "image_truncated" if "truncated" in text.lower() else "image_unreadable"
        return (code, f" does not decode ({text[:120]})", 0, 0, 1)
    return ("", "", int(real[0]), int(real[1]), int(orientation))


def judge(probe: Probe, where: str, width: Any, height: Any) -> ImageProblem | None:
    """The problem, if any, of an image with ``probe`` whose annotation says ``width`` x ``height``."""
    fault, detail, real_w, real_h, orientation = probe
    if fault:
        return ImageProblem(fault, f"{where}{detail}", 1)
    real = (real_w, real_h)
    if (width, height) == real:
        return None
    if orientation in SWAPPING_ORIENTATIONS and (width, height) == (real[1], real[0]):
        return ImageProblem(
            "exif_rotated",
            f"{where} is stored {real[0]}x{real[1]} with EXIF orientation {orientation}; the JSON's {width}x{height} "
            "is the upright view, so the image is written upright (pixels rotated) for training",
            orientation,
        )
    return ImageProblem(
        "image_size_mismatch", f"{where} is {real[0]}x{real[1]}, the JSON says {width}x{height}", orientation
    )


def check_image(tree: Any, rel: str, width: Any, height: Any, *, decode: bool = True) -> ImageProblem | None:
    """Check one image file of ``tree`` against the size its annotation file gives.

    Args:
        tree: a :class:`rfdetr_trainer.coco.layout.Tree`.
        rel: the image's path in the tree.
        width: width from the JSON.
        height: height from the JSON.
        decode: also decode the pixels (``False``: header only).

    Returns:
        None when the file decodes at the JSON's size; else the problem. A size that is the JSON's with width
        and height swapped, in a file whose EXIF orientation rotates it by 90 degrees, is ``exif_rotated``: the
        JSON describes the image as viewers show it.

    A decode check of a file the fetch already probed on landing, unchanged since, reuses that probe
    (:func:`rfdetr_trainer.coco.image_probe.recall`) instead of decoding it again; it is the same check.
    """
    from rfdetr_trainer.coco.image_probe import recall

    where = tree.describe(rel)
    fs_path = tree.fs_path(rel) if decode else None
    known = recall(fs_path) if fs_path is not None else None
    if known is None:
        try:
            with tree.open(rel) as fh:
                known = probe_image(fh, decode=decode)
        except OSError as exc:  # the file itself can't be read (permissions, a broken zip member)
            known = ("image_unreadable", f" does not decode ({(str(exc).strip() or type(exc).__name__)[:120]})",
                     0, 0, 1)
    return judge(known, where, width, height)


def check_images(
    tree: Any, items: Sequence[tuple[str, Any, Any]], *, decode: bool = True
) -> list[ImageProblem | None]:
    """:func:`check_image` over ``(rel, width, height)`` items, several at once; results in input order."""
    if len(items) < 4 or WORKERS == 1:
        return [check_image(tree, rel, w, h, decode=decode) for rel, w, h in items]
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(lambda item: check_image(tree, item[0], item[1], item[2], decode=decode), items))


def image_size(tree: Any, rel: str) -> tuple[int, int]:
    """``(width, height)`` as viewers show the image (EXIF orientation applied), from the header only.

    Raises:
        OSError: not an image Pillow can identify (``PIL.UnidentifiedImageError`` is an OSError).
    """
    from PIL import Image

    with tree.open(rel) as fh, Image.open(fh) as img:
        w, h = img.size
        return (h, w) if _orientation(img) in SWAPPING_ORIENTATIONS else (w, h)


def write_upright(src: Any, dest: Path) -> None:
    """Write the image in file object ``src`` to ``dest`` with its EXIF orientation applied to the pixels.

    The orientation tag is removed, so every reader (Pillow without ``exif_transpose`` as rfdetr loads
    images, OpenCV, browsers) sees the upright image its annotations were drawn on.
    """
    from PIL import Image, ImageOps

    with Image.open(src) as img:
        fmt = img.format or "PNG"
        upright = ImageOps.exif_transpose(img)
        params: dict[str, Any] = {}
        if fmt == "JPEG":
            params = {"quality": 95, "subsampling": 0}
        exif = upright.info.get("exif")
        if exif:
            params["exif"] = exif
        upright.save(dest, format=fmt, **params)


def problems_summary(problems: Iterable[tuple[str, str]], total: int, limit: int = 3) -> str:
    """``N of M images …: first, files (codes)`` for the one failure line of a merge or fetch."""
    problems = list(problems)
    codes: dict[str, int] = {}
    for code, _ in problems:
        codes[code] = codes.get(code, 0) + 1
    first = ", ".join(where for _, where in problems[:limit])
    more = f" and {len(problems) - limit} more" if len(problems) > limit else ""
    kinds = ", ".join(f"{code} {n}" for code, n in sorted(codes.items()))
    return f"{len(problems)} of {total} images can't be used ({kinds}): {first}{more}"
