"""Every documented failure: one line on stderr naming the culprit, the documented exit code, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REPO
from typer.testing import CliRunner

from rfdetr_trainer.errors import EXIT_CODES, CheckpointError, ConfigError, DatasetError, OutputError

runner = CliRunner()


def _invoke(args: list[str]):
    from rfdetr_trainer.cli.app import app

    return runner.invoke(app, args)


def _files(tmp: Path, data: Path) -> dict[str, str]:
    """The files the cases name; returns the placeholders their arguments use."""
    import shutil

    (tmp / "bad.json").write_text('{"training": {"epochs": 2,,}}')
    (tmp / "unknown.yaml").write_text("training:\n  epochz: 2\n")
    (tmp / "typed.yaml").write_text("training:\n  batch_size: big\n")
    (tmp / "notackpt.pth").write_text("hello, I am text")
    (tmp / "a-file").write_text("")
    broken = tmp / "broken"
    shutil.copytree(data, broken)
    missing = sorted((broken / "train").glob("*.jpg"))[0]
    missing.unlink()
    return {"tmp": str(tmp), "data": str(data), "broken": str(broken), "missing": missing.name}


FAST = ["--dataset-dir", "{data}", "--pretrain-weights", "none", "--output-dir", "{tmp}/runs"]

#: One row per documented failure: arguments ({tmp}, {data}, {broken} filled in), exit code, text of the line.
CASES = [
    pytest.param(["train", "--dataset-dir", "{tmp}/nope", "--pretrain-weights", "none", "--output-dir",
                  "{tmp}/runs"], DatasetError.exit_code, "{tmp}/nope", id="missing dataset dir"),
    pytest.param(["train", "--config", "{tmp}/bad.json"], ConfigError.exit_code,
                 "bad.json: malformed JSON at line 1", id="malformed JSON config"),
    pytest.param(["train", "--config", "{tmp}/unknown.yaml"], ConfigError.exit_code,
                 "unknown key 'training.epochz'", id="unknown config key"),
    pytest.param(["train", "--config", "{tmp}/typed.yaml"], ConfigError.exit_code,
                 "typed.yaml: training.batch_size", id="mistyped config key"),
    pytest.param(["train", *FAST, "--resolution", "230"], ConfigError.exit_code,
                 "training.resolution: 230 is not divisible by 32", id="resolution not divisible"),
    pytest.param(["train", *FAST, "--model-type", "seg-small", "--resolution", "224"], ConfigError.exit_code,
                 "not divisible by 24", id="seg resolution not divisible"),
    pytest.param(["train", *FAST, "--model-type", "huge"], ConfigError.exit_code, "--model-type: model.model_type",
                 id="unknown model type"),
    pytest.param(["export", "--checkpoint", "{tmp}/none.pth"], CheckpointError.exit_code,
                 "none.pth: checkpoint does not exist", id="missing checkpoint"),
    pytest.param(["predict", "--checkpoint", "{tmp}/notackpt.pth", "--input", "{data}"], CheckpointError.exit_code,
                 "notackpt.pth: not a PyTorch checkpoint", id="not a checkpoint"),
    pytest.param(["train", *FAST[:2], "--pretrain-weights", "{tmp}/w.pth"], CheckpointError.exit_code,
                 "w.pth does not exist", id="missing pretrain weights"),
    pytest.param(["train", *FAST, "--resume", "{tmp}"], CheckpointError.exit_code, "no last.ckpt to resume from",
                 id="resume without last.ckpt"),
    pytest.param(["train", "--dataset-dir", "{data}", "--pretrain-weights", "none", "--output-dir",
                  "{tmp}/a-file/x"], OutputError.exit_code, "output folder is not writable",
                 id="unwritable output dir"),
    pytest.param(["fetch"], ConfigError.exit_code, "no data source configured", id="no source at all"),
    pytest.param(["train", *FAST, "--epochs", "0"], ConfigError.exit_code, "--epochs: training.epochs",
                 id="bad flag value"),
    pytest.param(["train", "--dataset-dir", "{broken}", "--pretrain-weights", "none", "--output-dir",
                  "{tmp}/runs"], DatasetError.exit_code, "{missing}", id="image listed but missing"),
    pytest.param(["run", "--config", "{tmp}/missing.yaml"], ConfigError.exit_code, "config file not found",
                 id="missing config file"),
]


@pytest.mark.parametrize("args,code,message", CASES)
def test_error_is_one_line_with_exit_code(tmp_path, tiny_dataset, args, code, message):
    names = _files(tmp_path, tiny_dataset)
    result = _invoke([a.format(**names) for a in args])
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert message.format(**names) in lines[0]
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
    readme = (REPO / "README.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in readme, f"exit code {code} missing from README"
