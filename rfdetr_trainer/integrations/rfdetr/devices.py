"""The device a user asked for exists here, checked before a model is built (Lightning's own error is a bare
``MisconfigurationException: No supported gpu backend found!`` after seconds of model set-up)."""

from __future__ import annotations

from rfdetr_trainer.errors import ConfigError


def check_device(device: str) -> None:
    """Raise ConfigError naming ``--device`` when it asks for a GPU this machine does not have.

    ``auto`` and ``cpu`` never fail and never import torch.
    """
    if device in ("auto", "cpu"):
        return
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {device}: no GPU was found (CUDA is not available on this machine)",
                              hint="use --device cpu or --device auto")
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= count:
            raise ConfigError(f"--device {device}: no such GPU; this machine has {count} (cuda:0…cuda:{count - 1})",
                              hint="pick an existing index or --device auto")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps: no Apple GPU (MPS) was found", hint="use --device cpu or --device auto")
