"""The human ``inspect`` report: per-split counts, class histogram and findings, drawn with rich."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rfdetr_trainer.coco.schema import ERROR, SEVERITY, WARNING
from rfdetr_trainer.coco.validate import ValidationReport

#: Findings listed per code in the human report (all are in ``--json``).
LISTED_PER_CODE = 10
_STYLE = {ERROR: "bold red", WARNING: "yellow", "info": "cyan"}


def render_report(report: ValidationReport, console: Any, listed_per_code: int = LISTED_PER_CODE) -> None:
    """Print ``report`` on a rich Console."""
    from rich.table import Table

    console.print(f"[bold]{report.dataset}[/bold]  layout: {report.layout}")
    splits = report.counts.get("splits", {})
    table = Table(title="Splits", title_justify="left")
    for col in ("split", "images", "annotations", "background"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for name, entry in splits.items():
        table.add_row(name, str(entry["images"]), str(entry["annotations"]), str(entry["background"]))
    table.add_row("[bold]total", str(report.counts.get("images", 0)), str(report.counts.get("annotations", 0)), "")
    console.print(table)

    classes = report.counts.get("classes", {})
    if classes:
        hist = Table(title="Classes", title_justify="left")
        hist.add_column("class")
        for name in splits:
            hist.add_column(name, justify="right")
        hist.add_column("total", justify="right")
        hist.add_column("")
        top = max(classes.values()) or 1
        for cls, total in classes.items():
            bar = "█" * max(1 if total else 0, round(24 * total / top))
            row = [str(splits[s]["classes"].get(cls, 0)) for s in splits]
            hist.add_row(cls, *row, str(total), f"[green]{bar}")
        console.print(hist)

    by_code: dict[str, list] = defaultdict(list)
    for f in report.findings:
        by_code[f.code].append(f)
    if by_code:
        found = Table(title="Findings", title_justify="left")
        for col in ("severity", "code", "count", "where (file id: message)"):
            found.add_column(col, justify="right" if col == "count" else "left", overflow="fold")
        order = {ERROR: 0, WARNING: 1, "info": 2}
        for code in sorted(by_code, key=lambda c: (order.get(SEVERITY.get(c, WARNING), 3), c)):
            items = by_code[code]
            sev = SEVERITY.get(code, WARNING)
            lines = [f.line() for f in items[:listed_per_code]]
            if len(items) > listed_per_code:
                lines.append(f"… {len(items) - listed_per_code} more (see --json)")
            found.add_row(f"[{_STYLE[sev]}]{sev}", code, str(len(items)), "\n".join(lines))
        console.print(found)
    total = report.counts.get("images", 0)
    usable = total - len({where for _, where in report.unusable})
    console.print(f"usable: {usable} / {total} images, {report.counts.get('annotations', 0)} annotations"
                  + (f" ({total - usable} missing, undecodable or of another size)" if usable != total else ""))
    errors, warnings = len(report.errors), len(report.warnings)
    verdict = "[bold green]OK" if report.ok else "[bold red]FAILED"
    strict = " (strict: warnings fail)" if report.strict else ""
    console.print(f"{verdict}[/]  {errors} error(s), {warnings} warning(s){strict}")
