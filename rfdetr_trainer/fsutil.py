"""File-system helpers for outputs: permissions that follow the umask, and temporaries that never pile up.

``tempfile.mkdtemp`` and ``mkstemp`` create 0700 folders and 0600 files whatever the umask, which is right for
a secret scratch file and wrong for a dataset or a predictions folder that is renamed into place: those get
the mode any other tool would give them (``0777 & ~umask`` for folders, ``0666 & ~umask`` for files).

A run killed by SIGKILL (or SIGTERM before Python's handlers run) leaves its temporary sibling behind; the next
run to the same output removes such leftovers of its own (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from rfdetr_trainer.errors import OutputError
from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)

#: A temporary sibling older than this (newest mtime of the folder and its direct entries) is abandoned.
STALE_AFTER_S = 3600.0
_PID = re.compile(r"^\.(?:tmp|old)-(\d+)(?:-|$)")


def current_umask() -> int:
    """The process umask (read by setting it and putting it back: there is no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: Path) -> None:
    """Give ``path`` the mode a plain ``mkdir`` / ``open`` would have given it under the current umask."""
    mode = (0o777 if Path(path).is_dir() else 0o666) & ~current_umask()
    os.chmod(path, mode)


def temp_prefix(final: Path) -> str:
    """Name prefix of ``final``'s temporary siblings: ``.<name>.tmp-<pid>-`` (the pid lets a later run tell a
    leftover of a dead process from a sibling still being written)."""
    return f".{Path(final).name}.tmp-{os.getpid()}-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _age(path: Path, now: float) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        with contextlib.suppress(OSError), os.scandir(path) as entries:
            for entry in entries:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return now - newest


def remove_stale_temporaries(final: Path, *, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove ``final``'s abandoned temporary siblings (``.<name>.tmp-*``, ``.<name>.old-*``).

    One is abandoned when the process its name records is gone, or, for any name, when nothing in it changed
    for ``max_age_s``. Returns what was removed; anything that cannot be removed is left and logged.
    """
    final = Path(final).absolute()
    parent = final.parent
    if not parent.is_dir():
        return []
    removed = []
    now = time.time()
    for kind in ("tmp", "old"):
        for path in parent.glob(f".{glob_escape(final.name)}.{kind}-*"):
            try:
                match = _PID.search(path.name[len(final.name) + 1:])
                dead = match is not None and not _alive(int(match.group(1)))
                if not (dead or _age(path, now) > max_age_s):
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError as exc:
                log.warning("%s: cannot remove a stale temporary (%s)", path, exc.strerror or exc)
                continue
            removed.append(path)
    if removed:
        log.info("removed %d stale temporary folder(s) of %s left by an interrupted run", len(removed), final)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped (``[``, ``*``, ``?``)."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def missing_parents(folder: Path) -> list[Path]:
    """``folder`` and those of its ancestors that do not exist yet, deepest first."""
    folder = Path(folder).absolute()
    return [p for p in (folder, *folder.parents) if not p.exists()]


@contextlib.contextmanager
def discard_on_failure(folder: Path, keep: tuple[str, ...] = ()) -> Iterator[None]:
    """Remove ``folder`` (and the ancestors made for it) when the block fails and it did not exist before.

    A failed command leaves no empty output or run folder behind. ``keep`` lists glob patterns (``*.ckpt``):
    a folder holding a match is left, since it is worth resuming from.
    """
    created = missing_parents(folder)
    try:
        yield
    except BaseException:
        folder = Path(folder)
        if created and not (folder.is_dir() and any(next(folder.rglob(pat), None) for pat in keep)):
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
            for parent in created[1:]:
                with contextlib.suppress(OSError):
                    parent.rmdir()  # only while empty: stops at the first that holds something
        raise


def check_writable(folder: Path) -> Path:
    """Prove ``folder`` can be created (or written, when it exists) without creating it.

    A command that fails later then leaves no empty folder behind.

    Raises:
        OutputError: a component of the path is a file, or the nearest existing folder is not writable.
    """
    folder = Path(folder)
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing}: permission denied"
    if problem:
        raise OutputError(f"{folder}: output folder is not writable ({problem})",
                          hint="choose another --output-dir or fix its permissions")
    return folder
