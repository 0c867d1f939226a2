"""The package uses only the public API of rfdetr, Lightning, ClearML, cvat-sdk and supervision.

A private name (``_x``) of a library can change in any patch release (the first trainer copied rfdetr's
``_prepare_run_config`` & co. and drifted from ``RFDETR.train()``). The scan parses every module of the package:
importing a ``_``-prefixed module or name from those libraries fails, and so does reading a ``_``-prefixed
attribute that the package itself never defines (so ``self._x``, our own helpers and ``sys._getframe`` pass).
"""

from __future__ import annotations

import ast
from pathlib import Path

import rfdetr_trainer

LIBRARIES = ("rfdetr", "pytorch_lightning", "lightning", "lightning_fabric", "clearml", "cvat_sdk", "supervision")
#: Private names of the standard library the package may read (not the libraries this test guards).
STDLIB_PRIVATE = {"_getframe"}

PACKAGE = Path(rfdetr_trainer.__file__).parent


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"), str(p))) for p in sorted(PACKAGE.rglob("*.py"))]


def _own_private_names(modules: list[tuple[Path, ast.Module]]) -> set[str]:
    """Every ``_name`` the package defines: functions, classes, assignments, attributes it sets, parameters."""
    names: set[str] = set()
    for _, tree in modules:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                  and isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}):
                names.add(node.attr)  # only the package's own objects; ``model._x = …`` is still a violation
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.alias) and node.asname:
                names.add(node.asname)
    return {n for n in names if _private(n)}


def _guarded(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] in LIBRARIES


def violations() -> list[str]:
    modules = _modules()
    own = _own_private_names(modules)
    found = []
    for path, tree in modules:
        rel = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and _guarded(node.module):
                parts = node.module.split(".") + [a.name for a in node.names]
                found += [f"{rel}:{node.lineno}: from {node.module} import {p}" for p in parts if _private(p)]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if _guarded(alias.name) and any(_private(p) for p in alias.name.split(".")):
                        found.append(f"{rel}:{node.lineno}: import {alias.name}")
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                if node.attr in own or node.attr in STDLIB_PRIVATE:
                    continue
                found.append(f"{rel}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
                if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and isinstance(
                        node.args[1].value, str) and _private(node.args[1].value) and node.args[1].value not in own:
                    found.append(f"{rel}:{node.lineno}: getattr(..., {node.args[1].value!r})")
    return found


def test_no_private_names_of_guarded_libraries():
    assert violations() == []


def _probe_source() -> str:
    return (
        "from rfdetr.detr import _prepare_run_config\n"
        "import pytorch_lightning._graveyard\n"
        "def f(model):\n"
        "    model._has_been_trained = True\n"
        "    return model._align_num_classes_from_dataset, getattr(model, '_model_config_class')\n"
    )


def test_probe_module_is_flagged(tmp_path, monkeypatch):
    """The scan is not vacuous: the shapes the first trainer used are reported."""
    probe = tmp_path / "rfdetr_trainer"
    probe.mkdir()
    (probe / "__init__.py").write_text("")
    (probe / "bad.py").write_text(_probe_source())
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", probe)
    found = violations()
    assert any("_prepare_run_config" in f for f in found)
    assert any("import pytorch_lightning._graveyard" in f for f in found)
    assert any("._align_num_classes_from_dataset" in f for f in found)
    assert any("'_model_config_class'" in f for f in found)
    assert any("._has_been_trained" in f for f in found)  # writing a library object's private state counts too
