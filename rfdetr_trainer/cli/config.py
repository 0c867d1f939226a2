"""``rfdetr-trainer config show``: the effective configuration and where each value came from."""

from __future__ import annotations

import json

import typer

from rfdetr_trainer.cli import options as o

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(config: o.ConfigFile = None, env_file: o.EnvFile = None, json_out: o.JsonOut = False) -> None:
    """Every setting with its value and source (default, config file, .env, env, flag); secrets masked."""
    from pathlib import Path

    from rfdetr_trainer.settings import provenance, read_layers, settings_from_layers

    layers = read_layers(config, None, env_file or Path(".env"))
    rows = provenance(settings_from_layers(layers), layers)
    if json_out:
        print(json.dumps({k: {"value": v, "source": s} for k, v, s in rows}, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("key", "value", "source", box=None, pad_edge=False)
    for key, value, source in rows:
        table.add_row(key, json.dumps(value, default=str), source)
    Console(width=200).print(table)
