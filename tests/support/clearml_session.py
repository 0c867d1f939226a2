"""ClearML offline sessions under a temp HOME/CLEARML_CACHE_DIR, and readers for what a session recorded.

Importable by name from the tests (a bare ``conftest`` import is ambiguous across test folders)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

#: Variables a developer's shell or a clearml-agent may set that would change what these tests see.
#: CLEARML_PROC_MASTER_ID is set by Task.init for child processes: a child run with it attaches to that task.
CLEARML_VARS = ("CLEARML_CONFIG_FILE", "CLEARML_PROC_MASTER_ID", "TRAINS_PROC_MASTER_ID", "CLEARML_TASK_ID",
                "CLEARML_API_HOST", "CLEARML_WEB_HOST", "CLEARML_FILES_HOST",
                "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY", "CLEARML_OFFLINE_MODE", "TRAINS_OFFLINE_MODE",
                "RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "SLURM_PROCID")


def isolate(mp: pytest.MonkeyPatch, root: Path) -> Path:
    """Point HOME and CLEARML_CACHE_DIR at ``root`` and clear tracking/rank variables; returns the cache dir."""
    for name in CLEARML_VARS:
        mp.delenv(name, raising=False)
    mp.setenv("HOME", str(root / "home"))
    mp.setenv("CLEARML_CACHE_DIR", str(root / "cache"))
    (root / "home").mkdir(parents=True, exist_ok=True)
    # Report from a thread, not clearml's default subprocess that flushes every 5 s: close() then takes
    # milliseconds instead of ~15 s. clearml reads its config once per process; every test writes the same.
    conf = root / "clearml.conf"
    conf.write_text("sdk { development { report_use_subprocess: false } }\n")
    mp.setenv("CLEARML_CONFIG_FILE", str(conf))
    return root / "cache"


def reset_clearml() -> None:
    """Forget offline mode and any simulated agent task id between tests."""
    from clearml.backend_api.session import Session
    from clearml.backend_interface.base import InterfaceBase
    from clearml.config.remote import override_current_task_id

    override_current_task_id(None)
    # Task.set_offline(False) would connect to a server; the tests only need the flags back.
    InterfaceBase._offline_mode = False
    Session._offline_mode = False
    # The default API session is built once per process; one built in offline mode has no token and every later
    # online call retries on it forever ('Session' object has no attribute '_TokenManager__token').
    InterfaceBase._default_session = None
    # Task.set_offline sets both names (clearml's EnvEntry writes every alias); a child process reads either.
    os.environ.pop("CLEARML_OFFLINE_MODE", None)
    os.environ.pop("TRAINS_OFFLINE_MODE", None)


class Session:
    """What an offline ClearML session folder holds."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.task = json.loads((self.folder / "task.json").read_text())
        self.events = _jsonl_lists(self.folder / "metrics.jsonl")
        self.log = "\n".join(e.get("msg", "") for e in _jsonl_lists(self.folder / "log.jsonl"))

    def scalars(self) -> dict[tuple[str, str], list[tuple[int, float]]]:
        out: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for e in self.events:
            if e.get("type") == "training_stats_scalar":
                out.setdefault((e["metric"], e["variant"]), []).append((e["iter"], e["value"]))
        return out

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def hyperparams(self) -> dict[str, dict[str, str]]:
        return {section: {k: v.get("value") for k, v in values.items()}
                for section, values in (self.task.get("hyperparams") or {}).items()}

    def all_text(self) -> str:
        """Every text file of the session, for secret scans."""
        parts = []
        for path in self.folder.rglob("*"):
            if path.is_file() and path.suffix in {".json", ".jsonl", ".txt", ".yaml", ".conf", ""}:
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


def _jsonl_lists(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            out.extend(item if isinstance(item, list) else [item])
    return out


def only_session(cache: Path) -> Session:
    folders = [p for p in (cache / "offline").iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return Session(folders[0])
