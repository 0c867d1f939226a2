"""The fetch journal: ETag and size of every object landed, so an interrupted fetch resumes."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from rfdetr_trainer.integrations.archive import temp_sibling
from rfdetr_trainer.integrations.s3.discover import S3Object


class Journal:
    """Append-only record of landed objects: key → (etag, size). A torn last line is ignored."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, tuple[str, int]] = {}
        # key -> the image probe of the landed file and the mtime it was probed at (see coco/image_probe.py)
        self.probes: dict[str, tuple[list, int]] = {}
        self._lock = threading.Lock()
        self._fh: Any = None
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    row = json.loads(line)
                    self.entries[row["key"]] = (row["etag"], int(row["size"]))
                    if "probe" in row:
                        self.probes[row["key"]] = (list(row["probe"]), int(row["mtime_ns"]))
                except (ValueError, KeyError, TypeError):
                    continue

    def matches(self, obj: S3Object) -> bool:
        return self.entries.get(obj.key) == (obj.etag, obj.size)

    def _row(self, key: str) -> str:
        etag, size = self.entries[key]
        row: dict[str, Any] = {"key": key, "etag": etag, "size": size}
        if key in self.probes:
            row["probe"], row["mtime_ns"] = self.probes[key]
        return json.dumps(row) + "\n"

    def record(self, obj: S3Object, probe: tuple | None = None, mtime_ns: int | None = None) -> None:
        with self._lock:
            self.entries[obj.key] = (obj.etag, obj.size)
            if probe is not None and mtime_ns is not None:
                self.probes[obj.key] = (list(probe), mtime_ns)
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._fh.write(self._row(obj.key))
            self._fh.flush()

    def forget(self, key: str) -> None:
        with self._lock:
            self.entries.pop(key, None)
            self.probes.pop(key, None)

    def close(self, *, compact: bool) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            if compact and self.entries:
                tmp = temp_sibling(self.path)
                tmp.write_text("".join(self._row(k) for k in self.entries), encoding="utf-8")
                os.replace(tmp, self.path)

