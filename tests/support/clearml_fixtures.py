"""ClearML fixtures: an isolated offline ClearML home per test; the helpers live in clearml_session.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.clearml_session import isolate, reset_clearml


@pytest.fixture
def clearml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    cache = isolate(monkeypatch, tmp_path)
    yield cache
    reset_clearml()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("CLEARML_LOG_LEVEL", "WARNING")
