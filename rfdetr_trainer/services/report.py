"""``report.html``: one self-contained page a person opens to judge a run (images embedded as data URIs).

Built from what the run folder holds: the run manifest, ``metrics.jsonl`` (training curves), the evaluation
folder (per-class table, confusion matrix, PR/F1 curves, error gallery), the prediction grid and the dataset's
split counts. Missing parts are left out with a note, so a report can be rebuilt at any stage of a run.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import Any

from rfdetr_trainer.coco.io import write_text_atomic
from rfdetr_trainer.errors import OutputError
from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)

REPORT_NAME = "report.html"
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#1d2330}
h1{margin-bottom:4px}h2{border-bottom:2px solid #dfe3ea;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #dfe3ea;padding:4px 10px;text-align:right}
th{background:#f3f5f9}td:first-child,th:first-child{text-align:left}.muted{color:#6b7385}
.figs{display:flex;flex-wrap:wrap;gap:16px}.figs img{max-width:560px;width:100%;border:1px solid #dfe3ea}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
.gallery figure{margin:0}.gallery img{width:100%;border:1px solid #dfe3ea}figcaption{font-size:12px}
img.wide{max-width:100%;border:1px solid #dfe3ea}
"""
# Sets a marker once every image has decoded (naturalWidth > 0): the browser test reads it from the DOM.
SCRIPT = """
function rfdetrCheck(){var imgs=[].slice.call(document.images);
var ok=imgs.every(function(i){return i.complete&&i.naturalWidth>0});
document.body.setAttribute('data-images-loaded', ok ? String(imgs.length) : 'no');}
window.addEventListener('load', rfdetrCheck);
"""


def _data_uri(path: Path) -> str:
    mime = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _img(path: Path, alt: str, cls: str = "") -> str:
    return f'<img src="{_data_uri(path)}" alt="{html.escape(alt)}"{f" class={cls!r}" if cls else ""}>'


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if value != value else f"{value:.3f}"
    return html.escape(str(value))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _evaluation_dir(run_dir: Path) -> Path | None:
    for split in ("test", "valid", "train"):
        folder = run_dir / "evaluation" / split
        if (folder / "metrics.json").is_file():
            return folder
    return None


def _dataset_dir(run_dir: Path, manifest: dict[str, Any]) -> Path | None:
    dataset = (manifest.get("artifacts") or {}).get("dataset")
    if dataset:
        return Path(dataset)
    config = _read_json(run_dir / "checkpoints" / "training_config.json") or {}
    path = (config.get("train_config") or {}).get("dataset_dir")
    return Path(path) if path else None


def _dataset_section(dataset: Path | None) -> str:
    if dataset is None:
        return '<p class="muted">dataset unknown</p>'
    rows, classes = [], None
    for split in ("train", "valid", "test"):
        data = _read_json(dataset / split / "_annotations.coco.json")
        if not data:
            continue
        classes = classes or [c.get("name") for c in data.get("categories", [])]
        rows.append(f"<tr><td>{split}</td><td>{len(data.get('images', []))}</td>"
                    f"<td>{len(data.get('annotations', []))}</td></tr>")
    if not rows:
        return f'<p class="muted">{html.escape(str(dataset))}: no splits found</p>'
    return (f"<p>{html.escape(str(dataset))} · classes: {html.escape(', '.join(map(str, classes or [])))}</p>"
            "<table><tr><th>split</th><th>images</th><th>boxes</th></tr>" + "".join(rows) + "</table>")


def _per_class_table(metrics: dict[str, Any]) -> str:
    head = "".join(f"<th>{c}</th>" for c in ("class", "boxes", "AP50:95", "AP50", "precision", "recall", "F1",
                                              "confidence"))
    rows = []
    for r in metrics.get("per_class", []):
        rows.append(f'<tr class="class-row"><td>{html.escape(str(r["class"]))}</td><td>{r["num_gt"]}</td>'
                    f'<td>{_fmt(r["AP50_95"])}</td><td>{_fmt(r["AP50"])}</td><td>{_fmt(r["precision"])}</td>'
                    f'<td>{_fmt(r["recall"])}</td><td>{_fmt(r["f1"])}</td><td>{_fmt(r["confidence"])}</td></tr>')
    rows.append(f'<tr><th>all</th><th>{metrics.get("num_gt", "")}</th><th>{_fmt(metrics.get("mAP50_95"))}</th>'
                f'<th>{_fmt(metrics.get("mAP50"))}</th><th>{_fmt(metrics.get("precision"))}</th>'
                f'<th>{_fmt(metrics.get("recall"))}</th><th>{_fmt(metrics.get("f1"))}</th>'
                f'<th>{_fmt(metrics.get("confidence"))}</th></tr>')
    overall = " · ".join(f"{k} {_fmt(metrics.get(k))}" for k in ("mAP50_95", "mAP50", "mAP75", "AP_small",
                                                                 "AP_medium", "AP_large", "AR100"))
    return f'<p>{overall}</p><table id="per-class"><tr>{head}</tr>{"".join(rows)}</table>'


def _export_section(manifest: dict[str, Any]) -> str:
    rows = (manifest.get("stages", {}).get("export", {}) or {}).get("evaluation") or []
    if not rows:
        return ""
    body = "".join(f"<tr><td>{html.escape(r['format'])}</td><td>{_fmt(r.get('mAP50_95'))}</td>"
                   f"<td>{_fmt(r.get('mAP50'))}</td><td>{_fmt(r.get('drop'))}</td></tr>" for r in rows)
    return ("<h2>Exported files</h2><table><tr><th>model</th><th>mAP50:95</th><th>mAP50</th><th>drop</th></tr>"
            f"{body}</table>")


def build_report(run_dir: Path, output: Path | None = None) -> Path:
    """Write ``report.html`` for ``run_dir`` (or ``output``) and return its path.

    Raises:
        OutputError: ``run_dir`` is not a folder.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise OutputError(f"{run_dir}: not a run folder", hint="pass the folder train or run wrote")
    manifest = _read_json(run_dir / "run_manifest.json") or {}
    parts = [f"<h1>Run report: {html.escape(run_dir.name)}</h1>",
             f'<p class="muted">{html.escape(str(run_dir))} · built {time.strftime("%Y-%m-%d %H:%M:%S")}</p>']
    parts += ["<h2>Dataset</h2>", _dataset_section(_dataset_dir(run_dir, manifest))]

    parts.append("<h2>Training</h2>")
    results_png = run_dir / "results.png"
    if not results_png.is_file() and (run_dir / "metrics.jsonl").is_file():
        from rfdetr_trainer.integrations.plots import redraw_results

        redraw_results(run_dir / "metrics.jsonl", results_png)
    parts.append(_img(results_png, "training curves", "wide") if results_png.is_file()
                 else '<p class="muted">no training metrics in this run folder</p>')

    evaluation = _evaluation_dir(run_dir)
    metrics = _read_json(evaluation / "metrics.json") if evaluation else None
    if evaluation and metrics:
        parts.append(f"<h2>Evaluation on {html.escape(evaluation.name)}</h2>")
        parts.append(_per_class_table(metrics))
        figs = [(evaluation / n, alt) for n, alt in (("confusion_matrix.png", "confusion matrix"),
                                                      ("confusion_matrix_normalized.png", "normalized confusion"),
                                                      ("pr_curve.png", "PR curves"), ("f1_curve.png", "F1 curves"))]
        parts.append('<div class="figs">' + "".join(_img(p, alt) for p, alt in figs if p.is_file()) + "</div>")
    else:
        parts.append('<h2>Evaluation</h2><p class="muted">no evaluation yet (rfdetr-trainer evaluate)</p>')
    parts.append(_export_section(manifest))

    grid = run_dir / "predictions" / "grid.jpg"
    if grid.is_file():
        parts += ["<h2>Predictions</h2>", _img(grid, "prediction grid", "wide")]
    errors = _read_json(evaluation / "errors" / "errors.json") if evaluation else None
    if errors and errors.get("images"):
        parts.append(f"<h2>Error gallery</h2><p>images with the most false positives + false negatives at "
                     f"confidence {_fmt(errors.get('confidence'))}, IoU {_fmt(errors.get('iou'))}; ground truth "
                     f"green, predictions red</p><div class=gallery>")
        for item in errors["images"]:
            path = evaluation / "errors" / item["drawn"]
            if path.is_file():
                where = f" · CVAT task {item['task_id']} frame {item['frame']}" if "task_id" in item else ""
                parts.append(f"<figure>{_img(path, item['file_name'])}<figcaption>"
                             f"{html.escape(item['file_name'])}: {item['false_positives']} FP, "
                             f"{item['false_negatives']} FN{html.escape(where)}</figcaption></figure>")
        parts.append("</div>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(run_dir.name)} report</title>"
            f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>{''.join(parts)}</body></html>")
    output = Path(output or run_dir / REPORT_NAME)
    write_text_atomic(output, page)
    return output
