"""Callbacks read step losses without waiting on the device (LazyScalar)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from rfdetr_trainer.integrations.rfdetr.callbacks import LazyScalar  # noqa: E402


@pytest.mark.parametrize("value, expected", [(1.25, 1.25), (float("nan"), None), (float("inf"), None)])
def test_cpu_scalars_are_ready_at_once(value, expected):
    lazy = LazyScalar(torch.tensor(value))
    assert lazy.ready()
    assert lazy.value() == expected and lazy.wait() == expected


def test_value_is_a_detached_copy_of_what_was_queued():
    loss = torch.tensor(2.0, requires_grad=True) * 3
    lazy = LazyScalar(loss)
    assert math.isclose(lazy.value(), 6.0)
    assert not lazy._host.requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the non-blocking copy path")
def test_cuda_scalar_lands_without_a_blocking_read():
    x = torch.randn(2048, 2048, device="cuda")
    for _ in range(20):
        x = torch.tanh(x @ x / 2048)  # queue work so the copy is still in flight when LazyScalar returns
    lazy = LazyScalar(x.sum())
    assert lazy.value() is None or isinstance(lazy.value(), float)  # never blocks
    assert isinstance(lazy.wait(), float) and lazy.ready()
