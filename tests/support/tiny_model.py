"""The flags of one tiny real training: Nano from scratch, 1 epoch at 224 px on CPU, no tracking."""

from __future__ import annotations

TINY_TRAIN = ["--model-type", "nano", "--pretrain-weights", "none", "--epochs", "1", "--batch-size", "4",
              "--grad-accum-steps", "1", "--resolution", "224", "--device", "cpu", "--num-workers", "0",
              "--no-tensorboard", "--no-clearml"]
