"""Rank detection from the environment, before torch.distributed exists."""

from __future__ import annotations

import sys

import pytest

from rfdetr_trainer.distributed import global_rank, is_rank_zero, world_size


@pytest.mark.parametrize(
    ("env", "rank_zero", "rank"),
    [
        ({}, True, 0),                                                    # plain single process
        ({"LOCAL_RANK": "0", "NODE_RANK": "0", "WORLD_SIZE": "2"}, True, 0),  # Lightning parent during fit
        ({"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, False, 1),               # Lightning-spawned child
        ({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "4"}, True, 0),   # torchrun rank 0
        ({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}, False, 3),  # torchrun, second node
        ({"RANK": "0", "LOCAL_RANK": "3"}, True, 0),                      # RANK wins over LOCAL_RANK
        ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, False, None),             # multi-node Lightning, node 1
        ({"GROUP_RANK": "2", "LOCAL_RANK": "0"}, False, None),            # torchrun group rank only
        ({"SLURM_PROCID": "0", "SLURM_LOCALID": "0"}, True, 0),           # srun task 0
        ({"SLURM_PROCID": "5"}, False, 5),
        ({"OMPI_COMM_WORLD_RANK": "2"}, False, 2),                        # mpirun
        ({"LOCAL_RANK": ""}, True, 0),                                    # empty variables are unset
    ],
)
def test_rank_zero_from_env(env: dict[str, str], rank_zero: bool, rank: int | None) -> None:
    assert is_rank_zero(env) is rank_zero
    if rank is not None:
        assert global_rank(env) == rank
    else:
        assert global_rank(env) > 0


def test_world_size_and_default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert world_size({"WORLD_SIZE": "8"}) == 8
    assert world_size({}) == 1
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_rank_zero()
    monkeypatch.delenv("LOCAL_RANK")
    assert is_rank_zero()


def test_distributed_module_is_torch_free() -> None:
    import subprocess

    code = "import sys, rfdetr_trainer.distributed, rfdetr_trainer.integrations.clearml; " \
           "print(sorted(m for m in ('torch','clearml','pytorch_lightning','tensorboard') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
