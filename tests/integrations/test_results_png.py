"""results.png: losses, learning rate and mAP per epoch, redrawn from metrics.jsonl."""

from __future__ import annotations

import json

from PIL import Image

from rfdetr_trainer.integrations.plots import redraw_results


def test_results_png_is_drawn_from_every_epoch_record(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    assert redraw_results(metrics, tmp_path / "results.png") is None  # nothing yet, nothing drawn
    records = [{"epoch": e, "train/loss": 3.0 - e, "train/lr": 1e-4, "val/mAP_50": 0.1 * e, "val/AP/cat": 0.2}
               for e in range(3)]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    png = redraw_results(metrics, tmp_path / "results.png")
    with Image.open(png) as img:
        assert img.width > 2.5 * img.height > 300  # three panels side by side: loss, learning rate, mAP
    before = png.stat().st_mtime_ns
    metrics.write_text(metrics.read_text() + json.dumps({"epoch": 3, "train/loss": 0.5}) + "\n")
    assert redraw_results(metrics, png).stat().st_mtime_ns >= before
