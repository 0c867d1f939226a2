"""report.html opened in a real browser (headless Chromium): it renders, names the classes, every image loads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app

pytestmark = pytest.mark.slow


def _chromium() -> str:
    """The chromium binary, installed from Debian's package when missing (skipped only where that fails)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, capture_output=True,
                       timeout=900)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"headless Chromium is not installed and apt-get could not install it: {exc}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get install chromium succeeded but no chromium binary is on PATH")
    return found


def _browser(binary: str, profile, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=10000", *args],
        capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def report_run(trained_run, tiny_dataset, tmp_path_factory):
    """A run folder with training metrics, an evaluation on test and predictions, from the shared model."""
    from rfdetr_trainer.integrations.rfdetr.inference import load_backend
    from rfdetr_trainer.schemas import ValidationConfig
    from rfdetr_trainer.services.evaluate import evaluate
    from rfdetr_trainer.services.predict import predict

    run = tmp_path_factory.mktemp("report") / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(trained_run.metrics, run / "metrics.jsonl")
    shutil.copy(trained_run.checkpoints / "training_config.json", run / "checkpoints" / "training_config.json")
    backend = load_backend(trained_run.checkpoints / "checkpoint_best_total.pth", device="cpu")
    evaluate(backend, tiny_dataset, run / "evaluation" / "test", split="test", num_errors=3)
    predict(backend, tiny_dataset / "test", run / "predictions", ValidationConfig(confidence_threshold=0.2))
    yield run
    shutil.rmtree(run.parent, ignore_errors=True)


def test_report_renders_in_chromium(report_run, tmp_path):
    binary = _chromium()
    result = CliRunner().invoke(app, ["report", str(report_run)])
    assert result.exit_code == 0, result.output
    report = report_run / "report.html"
    assert result.stdout.strip().splitlines()[-1] == str(report)
    page = report.read_text()
    sources = re.findall(r'<img src="([^"]{0,11})', page)
    assert sources and all(s.startswith("data:image/") for s in sources)  # self-contained: every image embedded
    assert "<link" not in page and "<script src" not in page
    dom = _browser(binary, tmp_path / "profile-dom", "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    images = page.count("<img ")
    assert images >= 6  # training curves, matrix x2, PR, F1, prediction grid, error gallery
    assert f'data-images-loaded="{images}"' in dom.stdout, "an image did not decode in the browser"
    table = dom.stdout[dom.stdout.index('id="per-class"'):]
    table = table[:table.index("</table>")]
    for name in ("square", "circle", "triangle"):
        assert f"<td>{name}</td>" in table
    shot = tmp_path / "report.png"
    taken = _browser(binary, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,3000",
                     "--hide-scrollbars", report.as_uri())
    assert taken.returncode == 0 and shot.is_file() and shot.stat().st_size > 20_000, taken.stderr[-2000:]
    kept = report_run.parent / "report-screenshot.png"
    shutil.copy(shot, kept)  # for a person to look at while the folder lives
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1280, 3000)
        assert len(set(img.convert("L").resize((64, 64)).getdata())) > 20  # not a blank page


def test_report_of_a_folder_that_is_not_a_run_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 11 and "not a run folder" in result.stderr


def test_report_manifest_export_rows(report_run, tmp_path):
    from rfdetr_trainer.services.report import build_report

    run = tmp_path / "run"
    shutil.copytree(report_run, run)
    (run / "run_manifest.json").write_text(json.dumps({"stages": {"export": {"evaluation": [
        {"format": "pytorch", "mAP50_95": 0.5, "mAP50": 0.7, "drop": 0.0},
        {"format": "onnx", "mAP50_95": 0.499, "mAP50": 0.7, "drop": 0.001}]}}}))
    page = build_report(run).read_text()
    assert "<h2>Exported files</h2>" in page and "<td>onnx</td><td>0.499</td>" in page
