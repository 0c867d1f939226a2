"""ruff over the project: among other rules, TID253 keeps heavy libraries out of module-level imports."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from support import REPO


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    # The dev extra installs it: a missing linter is a broken install, not a reason to skip the check.
    assert Path(ruff).exists(), "ruff is not installed (pip install -e '.[dev]')"
    out = subprocess.run([ruff, "check", "rfdetr_trainer", "tests", "benchmarks", "examples"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def test_layers_import_downwards_only():
    """import-linter's contracts in pyproject.toml: cli > pipeline > settings > services > integrations > ..."""
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    assert Path(lint).exists(), "import-linter is not installed (pip install -e '.[dev]')"
    out = subprocess.run([lint], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
    assert "0 broken" in out.stdout

# --- Typer only: Typer >= 0.26 vendors Click and no longer installs it, so the package must never import click.

def _imports_click(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "click" for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "click":
            lines.append(node.lineno)
    return lines


def test_no_module_of_the_package_imports_click():
    found = [f"{path.relative_to(REPO)}:{line}" for path in sorted((REPO / "rfdetr_trainer").rglob("*.py"))
             for line in _imports_click(ast.parse(path.read_text(encoding="utf-8"), str(path)))]
    assert not found, f"import typer's names instead of click: {found}"


def test_the_scan_sees_click_imports():
    assert _imports_click(ast.parse("import click\nfrom click.types import Choice\nfrom .click import x\n")) == [1, 2]


# typer < 0.26 imports click itself, so the run-time check attributes each import to the module that asks for it.
_HELP_EVERY_COMMAND = """
import builtins, sys
asked = []
real_import = builtins.__import__
def spy(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if level == 0 and name.split(".")[0] == "click" and importer.split(".")[0] == "rfdetr_trainer":
        asked.append(importer)
    return real_import(name, globals, locals, fromlist, level)
builtins.__import__ = spy

import typer.main
from rfdetr_trainer.cli.app import app

def walk(command, path):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, path + [name])

paths = list(walk(typer.main.get_command(app), []))
for path in paths:
    try:
        app(path + ["--help"], prog_name="rfdetr-trainer")
    except SystemExit as e:
        assert e.code == 0, (path, e.code)
    else:
        raise AssertionError(f"{path} --help did not exit")
print("COMMANDS=" + ";".join(" ".join(p) for p in paths))
print("CLICK_IMPORTERS=" + ",".join(sorted(set(asked))))
"""


def test_help_of_every_command_works_without_the_package_importing_click():
    out = subprocess.run([sys.executable, "-c", _HELP_EVERY_COMMAND], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    commands = lines[-2].removeprefix("COMMANDS=").split(";")
    assert {"", "fetch", "merge", "train", "run", "config", "config show"} <= set(commands), commands
    assert out.stdout.count("Usage") == len(commands)
    assert lines[-1] == "CLICK_IMPORTERS=", lines[-1]


# --- tests/ mirrors the package: a test folder is named after the part of rfdetr_trainer it tests.

# Folders with no package counterpart: the top-level modules, whole runs, and the shared helpers.
_TEST_ONLY_FOLDERS = {"core", "e2e", "support"}


def _folders(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__"}


def test_test_folders_mirror_the_package():
    tests, package = REPO / "tests", REPO / "rfdetr_trainer"
    unmatched = sorted(f for f in _folders(tests)
                       if f.split("/")[0] not in _TEST_ONLY_FOLDERS and not (package / f / "__init__.py").exists())
    assert not unmatched, f"test folders with no package counterpart: {unmatched}"
    assert {"pipeline", "services", "integrations/cvat", "integrations/s3", "integrations/clearml"} <= _folders(tests)


def _sys_path_edits(tree: ast.AST) -> list[int]:
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and ast.unparse(node.func.value) == "sys.path" and node.func.attr in {"insert", "append", "extend"}]


def test_tests_import_their_helpers_from_support_not_through_sys_path():
    found = [f"{p.relative_to(REPO)}:{line}" for p in sorted((REPO / "tests").rglob("*.py"))
             for line in _sys_path_edits(ast.parse(p.read_text(encoding="utf-8"), str(p)))]
    assert not found, f"import helpers as support.<module> instead: {found}"
    assert _sys_path_edits(ast.parse("import sys\nsys.path.insert(0, 'x')\nsys.path.append('y')\n")) == [2, 3]
