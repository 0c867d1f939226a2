"""The harness of ``test_bad_input.py``: a workspace of inputs, one row's expectations, and how it is run.

Rows that need a file the user cannot read run the CLI as ``nobody`` when the suite runs as root (root reads
anything); rows about the umask or about what was imported run it in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app
from support import REPO
from support.coco_fixtures import Img, ann, write_dataset


class Workspace:
    """A world-readable temporary folder (``nobody`` must reach it) with the inputs rows ask for."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rfdetr-bad-input-"))
        self.root.chmod(0o777)
        self._request = request
        self.cleanups: list[Callable[[], None]] = []

    @property
    def checkpoint(self) -> Path:
        return self._request.getfixturevalue("tiny_checkpoint")

    def dataset(self, name: str = "good", n: int = 4) -> Path:
        """A small rfdetr-layout dataset of PNGs (classes ``car`` and ``tree``)."""
        def imgs(prefix: str, count: int, base: int) -> list[Img]:
            return [Img(f"{prefix}{i}.png", [ann("car" if i % 2 else "tree")], color=(base + i, 3, 3))
                    for i in range(count)]

        return write_dataset(self.root / name, {"train": imgs("a", n, 0), "valid": imgs("v", 2, 60),
                                                "test": imgs("t", 2, 90)})

    def edit_json(self, path: Path, change: Callable[[dict], None]) -> None:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    def image(self, name: str = "img.png") -> Path:
        return next((self.dataset(f"img-{name}") / "test").glob("*.png"))

    def file(self, name: str, content: bytes | str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def silent_server(self) -> str:
        """``host:port`` of a socket that accepts every connection and never answers."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.2)
        held, stop = [], threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()

        def close() -> None:
            stop.set()
            thread.join(2)
            for conn in held:
                conn.close()
            listener.close()

        self.cleanups.append(close)
        return f"127.0.0.1:{listener.getsockname()[1]}"

    def close(self) -> None:
        for cleanup in self.cleanups:
            cleanup()
        for path in self.root.rglob("*"):  # files made unreadable for a row
            if not path.is_symlink():
                path.chmod(0o777)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Case:
    """One bad input: the command line, its environment, and what must come out."""

    args: list[str]
    code: int
    line: str | None  # words the single ``error:`` line holds (all of them, separated by " | "); None: no error
    check: Callable[[], None] = lambda: None
    env: dict[str, str] = field(default_factory=dict)
    how: str = "in-process"  # or "nobody" (cannot read what root can), "umask", "subprocess"
    stderr: tuple[str, ...] = ()  # other stderr lines that must appear (warnings)
    not_in_output: tuple[str, ...] = ()
    traceback: bool = False
    max_seconds: float | None = None
    heavy_modules: bool | None = None  # subprocess only: were torch/rfdetr imported?
    umask: int = 0o022


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def no_temporaries(folder: Path) -> None:
    left = [p.name for p in folder.parent.glob(f".{folder.name}.*")]
    assert not left, f"temporaries left beside {folder}: {left}"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)



_SUBPROCESS = """
import json, os, sys
cfg = json.loads(sys.argv[1])
os.umask(cfg["umask"])
if cfg["nobody"]:
    # The interpreter's stdlib and the checkout may sit where nobody can't read (root's home, a 0700 mktemp
    # clone): load what the commands import, every module of the package included, then drop to nobody.
    import importlib, pkgutil
    import rich
    import rfdetr_trainer
    for name in cfg["preload"]:
        importlib.import_module(name)
    for package in (rfdetr_trainer, rich):  # rich imports its tables (emoji codes, ...) lazily
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__"):
                try:
                    importlib.import_module(info.name)
                except ImportError:  # an optional extra (rich's Jupyter support, the lora extra)
                    pass
    os.setgid(65534)
    os.setuid(65534)
sys.argv = ["rfdetr-trainer", *cfg["args"]]
from rfdetr_trainer.cli.app import main
try:
    main()
finally:
    heavy = sorted(m for m in ("torch", "rfdetr", "onnx", "onnxruntime") if m in sys.modules)
    sys.stderr.write("\\nHEAVY_MODULES=" + json.dumps(heavy) + "\\n")
"""


#: Modules the dataset commands import lazily, loaded before the subprocess becomes ``nobody``.
PRELOAD = [
    "rfdetr_trainer.cli.app", "rfdetr_trainer.cli.common", "rfdetr_trainer.settings", "rfdetr_trainer.services.merge",
    "rfdetr_trainer.services.inspect", "rfdetr_trainer.coco.merge", "rfdetr_trainer.coco.validate",
    "rfdetr_trainer.integrations.progress", "rfdetr_trainer.logs", "rich.logging", "rich.progress", "rich.console",
    "dotenv", "yaml", "PIL.Image", "PIL.PngImagePlugin", "PIL.JpegImagePlugin", "msgspec", "tempfile", "zipfile",
    "uuid", "difflib", "traceback", "concurrent.futures", "pydantic_settings", "encodings.idna",
    "encodings.utf_8_sig", "encodings.latin_1", "encodings.ascii", "platformdirs", "PIL.ImageOps", "PIL.ExifTags",
    "PIL.TiffImagePlugin", "PIL.GifImagePlugin", "PIL.BmpImagePlugin", "PIL.WebPImagePlugin", "csv", "signal",
]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def run(case: Case, w: Workspace, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    monkeypatch.chdir(w.root)
    nobody = case.how == "nobody" and os.geteuid() == 0
    if case.how == "in-process" or (case.how == "nobody" and not nobody):
        for name, value in case.env.items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(app, case.args)
        return Outcome(result.exit_code, result.stdout, result.stderr)
    env = {**os.environ, **case.env, "PYTHONPATH": str(REPO), "HOME": str(w.root), "NO_COLOR": "1"}
    config = {"args": case.args, "umask": case.umask, "nobody": nobody, "preload": PRELOAD}
    proc = subprocess.run([sys.executable, "-c", _SUBPROCESS, json.dumps(config)], env=env, cwd=w.root,
                          capture_output=True, text=True, timeout=600)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)
