"""Test helpers shared across the test folders: loopback peers (the CVAT test server, moto, a fault proxy, a
ClearML API server), data builders and the fixtures that start them.

``tests/`` mirrors the package; its helpers live here, imported as ``support.<module>`` (pyproject's pytest
``pythonpath`` puts ``tests/`` on the path), and ``tests/conftest.py`` registers the fixture modules.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The checkout's root (README.md, pyproject.toml, the package)."""
