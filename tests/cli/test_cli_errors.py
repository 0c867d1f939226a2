"""Every documented failure: one line on stderr naming the culprit, the documented exit code, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rfdetr_trainer.errors import EXIT_CODES, CheckpointError, ConfigError, DatasetError, OutputError

runner = CliRunner()


def _invoke(args: list[str]):
    from rfdetr_trainer.cli.app import app

    return runner.invoke(app, args)


def _cases(tmp: Path, data: Path) -> list[tuple[str, list[str], int, str]]:
    (tmp / "bad.json").write_text('{"training": {"epochs": 2,,}}')
    (tmp / "unknown.yaml").write_text("training:\n  epochz: 2\n")
    (tmp / "typed.yaml").write_text("training:\n  batch_size: big\n")
    (tmp / "notackpt.pth").write_text("hello, I am text")
    (tmp / "a-file").write_text("")
    import shutil

    broken = tmp / "broken"
    shutil.copytree(data, broken)
    missing = sorted((broken / "train").glob("*.jpg"))[0]
    missing.unlink()
    fast = ["--dataset-dir", str(data), "--pretrain-weights", "none", "--output-dir", str(tmp / "runs")]
    return [
        ("missing dataset dir", ["train", "--dataset-dir", str(tmp / "nope"), "--pretrain-weights", "none",
                                 "--output-dir", str(tmp / "runs")], DatasetError.exit_code, str(tmp / "nope")),
        ("malformed JSON config", ["train", "--config", str(tmp / "bad.json")], ConfigError.exit_code,
         "bad.json: malformed JSON at line 1"),
        ("unknown config key", ["train", "--config", str(tmp / "unknown.yaml")], ConfigError.exit_code,
         "unknown key 'training.epochz'"),
        ("mistyped config key", ["train", "--config", str(tmp / "typed.yaml")], ConfigError.exit_code,
         "typed.yaml: training.batch_size"),
        ("resolution not divisible", ["train", *fast, "--resolution", "230"], ConfigError.exit_code,
         "training.resolution: 230 is not divisible by 32"),
        ("seg resolution not divisible", ["train", *fast, "--model-type", "seg-small", "--resolution", "224"],
         ConfigError.exit_code, "not divisible by 24"),
        ("unknown model type", ["train", *fast, "--model-type", "huge"], ConfigError.exit_code,
         "--model-type: model.model_type"),
        ("missing checkpoint", ["export", "--checkpoint", str(tmp / "none.pth")], CheckpointError.exit_code,
         "none.pth: checkpoint does not exist"),
        ("not a checkpoint", ["predict", "--checkpoint", str(tmp / "notackpt.pth"), "--input", str(data)],
         CheckpointError.exit_code, "notackpt.pth: not a PyTorch checkpoint"),
        ("missing pretrain weights", ["train", *fast[:2], "--pretrain-weights", str(tmp / "w.pth")],
         CheckpointError.exit_code, "w.pth does not exist"),
        ("resume without last.ckpt", ["train", *fast, "--resume", str(tmp)], CheckpointError.exit_code,
         "no last.ckpt to resume from"),
        ("unwritable output dir", ["train", "--dataset-dir", str(data), "--pretrain-weights", "none",
                                   "--output-dir", str(tmp / "a-file" / "x")],
         OutputError.exit_code, "output folder is not writable"),
        ("no source at all", ["fetch"], ConfigError.exit_code, "no data source configured"),
        ("bad flag value", ["train", *fast, "--epochs", "0"], ConfigError.exit_code, "--epochs: training.epochs"),
        ("image listed but missing", ["train", "--dataset-dir", str(broken), "--pretrain-weights", "none",
                                      "--output-dir", str(tmp / "runs")], DatasetError.exit_code, missing.name),
        ("missing config file", ["run", "--config", str(tmp / "missing.yaml")], ConfigError.exit_code,
         "config file not found"),
    ]




@pytest.fixture
def cases(tmp_path, tiny_dataset):
    return {c[0]: c for c in _cases(tmp_path, tiny_dataset)}


@pytest.mark.parametrize(
    "name",
    ["missing dataset dir", "malformed JSON config", "unknown config key", "mistyped config key",
     "resolution not divisible", "seg resolution not divisible", "unknown model type", "missing checkpoint",
     "not a checkpoint", "missing pretrain weights", "resume without last.ckpt", "unwritable output dir",
     "no source at all", "bad flag value", "missing config file", "image listed but missing"],
)
def test_error_is_one_line_with_exit_code(cases, name):
    _, args, code, message = cases[name]
    result = _invoke(args)
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert code in EXIT_CODES


def test_published_weights_offline_fail_fast(tiny_dataset, tmp_path, monkeypatch):
    """No network here: asking for the published checkpoint says to pass a path or none, at once."""
    monkeypatch.setenv("RF_HOME", str(tmp_path / "cache"))
    result = _invoke(["train", "--dataset-dir", str(tiny_dataset), "--output-dir", str(tmp_path / "runs")])
    assert result.exit_code == ConfigError.exit_code, result.output
    assert "--pretrain-weights none" in result.stderr


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    result = _invoke(["train", "--config", str(tmp_path / "bad.json"), "--debug"])
    assert result.exit_code == ConfigError.exit_code, result.output
    assert "Traceback (most recent call last)" in result.stderr and "ConfigError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_exit_codes_are_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in readme, f"exit code {code} missing from README"
