"""Root Typer app: registers the commands and maps errors to exit codes, in this one place."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import typer
from typer.core import TyperGroup

from rfdetr_trainer import __version__
from rfdetr_trainer.cli.options import VARIADIC
from rfdetr_trainer.errors import TrainerError


def _expand_variadic(args: list[str]) -> list[str]:
    """Turn ``--tags a b`` into ``--tags a --tags b`` for the options that take several values.

    Click options take one value each; the design's flags (``--cvat-task-ids 1 2 3``) take several, so they are
    rewritten before parsing. A value never starts with ``-`` except a negative number.
    """
    out: list[str] = []
    flag: str | None = None
    for arg in args:
        if arg == "--":
            flag = None
            out.append(arg)
        elif arg in VARIADIC:
            flag = arg
            out.append(arg)
            out.append("\0pending")
        elif flag is not None and (not arg.startswith("-") or _is_number(arg)):
            if out[-1] == "\0pending":
                out[-1] = arg
            else:
                out.extend([flag, arg])
        else:
            flag = None
            out.append(arg)
    return [a for a in out if a != "\0pending"]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: Click's own control-flow exceptions pass through untouched. Typer >= 0.26 vendors Click, so the classes are
#: reached through Typer's names (``typer.BadParameter`` derives from ``ClickException``) instead of ``import click``.
_CLICK_FLOW = (typer.Exit, typer.Abort, SystemExit,
               *[c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"])


class RootGroup(TyperGroup):
    """Parses variadic flags and a global ``--debug`` anywhere, and turns errors into exit codes."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        debug = "--debug" in args
        args = [a for a in args if a != "--debug"]
        ctx.meta["rfdetr_trainer.debug"] = debug or ctx.meta.get("rfdetr_trainer.debug", False)
        return super().parse_args(ctx, _expand_variadic(args))

    def invoke(self, ctx: typer.Context) -> Any:
        debug = ctx.meta.get("rfdetr_trainer.debug", False)
        try:
            return super().invoke(ctx)
        except TrainerError as exc:
            if debug:
                traceback.print_exc(file=sys.stderr)
            _report(exc.message, exc.hint)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            _report("interrupted", _resume_hint(exc))
            ctx.exit(130)
        except _CLICK_FLOW:
            raise
        except Exception as exc:  # a bug or an unexpected library failure: one line, traceback on --debug
            if debug:
                traceback.print_exc(file=sys.stderr)
            _report(f"unexpected error: {type(exc).__name__}: {exc}", "run again with --debug for the traceback")
            ctx.exit(1)


def _resume_hint(exc: KeyboardInterrupt) -> str:
    """How to pick up an interrupted run; the name a run made up travels in ``errors.Interrupted``."""
    generated = getattr(exc, "run_name", None)
    if generated:
        return f"rerun the same command with --run-name {generated} to resume; finished stages are reused"
    return "rerun the same command to resume; finished stages are reused"


def _report(message: str, hint: str | None) -> None:
    from rfdetr_trainer.urls import mask_userinfo

    line = f"error: {message}"
    if hint:
        line += f" (hint: {hint})"
    print(mask_userinfo(" ".join(line.split())), file=sys.stderr)  # one line, whatever a library's text held


app = typer.Typer(
    cls=RootGroup,
    name="rfdetr-trainer",
    help="Annotated images to a trained, exported RF-DETR detector: fetch, merge, train, predict, export, run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="more log output on stderr (-vv: debug)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="only warnings and errors on stderr"),
) -> None:
    """Global flags; ``--debug`` (anywhere on the line) shows tracebacks."""
    from rfdetr_trainer.logs import setup_logging

    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    setup_logging(level)


def _register() -> None:
    from rfdetr_trainer.cli import (
        annotate,
        config,
        evaluate,
        export,
        fetch,
        inspect,
        merge,
        predict,
        report,
        run,
        train,
    )

    app.command("fetch")(fetch.fetch_command)
    app.command("merge")(merge.merge_command)
    app.command("inspect")(inspect.inspect_command)
    app.command("train")(train.train_command)
    app.command("predict")(predict.predict_command)
    app.command("export")(export.export_command)
    app.command("run")(run.run_command)
    app.command("evaluate")(evaluate.evaluate_command)
    app.command("report")(report.report_command)
    app.command("annotate")(annotate.annotate_command)
    app.add_typer(config.app, name="config")


_register()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="rfdetr-trainer")
