"""One tiny real checkpoint per test session: Nano from scratch, 8 synthetic images, 1 epoch at 224 px on CPU."""

from __future__ import annotations

from pathlib import Path

from rfdetr_trainer.synthetic import make_dataset

TINY_TRAIN = ["--model-type", "nano", "--pretrain-weights", "none", "--epochs", "1", "--batch-size", "4",
              "--grad-accum-steps", "1", "--resolution", "224", "--device", "cpu", "--num-workers", "0",
              "--no-tensorboard", "--no-clearml"]


def train_tiny(root: Path) -> tuple[Path, Path]:
    """Train through the real CLI; returns (best checkpoint, dataset folder)."""
    from typer.testing import CliRunner

    from rfdetr_trainer.cli.app import app

    dataset = make_dataset(root / "data", num_images=8, image_size=128, seed=5)
    result = CliRunner().invoke(app, ["train", "--dataset-dir", str(dataset), "--output-dir", str(root / "runs"),
                                      "--run-name", "tiny", *TINY_TRAIN])
    assert result.exit_code == 0, result.output
    checkpoint = Path(result.stdout.strip().splitlines()[-1])
    assert checkpoint.is_file(), result.stdout
    return checkpoint, dataset
