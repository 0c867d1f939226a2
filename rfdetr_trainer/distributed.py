"""Which process of a distributed run this is, read from the environment (torch-free).

Under ``--strategy ddp`` Lightning re-executes the whole command once per extra device with ``LOCAL_RANK``
(and ``NODE_RANK``) set, and ``torchrun``/SLURM/MPI set their own variables before the program starts. So the
rank is known from the environment long before ``torch.distributed`` is initialised, which is what lets the
runner keep side effects (ClearML, predictions, export, manifests, the stdout result) on rank 0 only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: Variables that hold the global rank directly, most specific first.
GLOBAL_RANK_VARS = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "JSM_NAMESPACE_RANK")
#: Variables that hold the node's rank (Lightning, torchrun) and the process's rank on its node.
NODE_RANK_VARS = ("NODE_RANK", "GROUP_RANK")
LOCAL_RANK_VARS = ("LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK")


def _first_int(env: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = env.get(name, "").strip()
        if value.lstrip("-").isdigit():
            return int(value)
    return None


def global_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's global rank (0 when not distributed).

    A global rank variable wins; otherwise the process is rank 0 only if both its node rank and local rank are 0
    (the exact global number is not needed for that question and can't be known without the per-node size).
    """
    env = os.environ if env is None else env
    rank = _first_int(env, GLOBAL_RANK_VARS)
    if rank is not None:
        return rank
    node = _first_int(env, NODE_RANK_VARS) or 0
    local = _first_int(env, LOCAL_RANK_VARS) or 0
    if node == 0:
        return local
    # Not rank 0; a positive stand-in that keeps the answer right for is_rank_zero.
    return node * max(local_world_size(env), 1) + local


def local_world_size(env: Mapping[str, str] | None = None) -> int:
    """Processes per node as the launcher states it (``LOCAL_WORLD_SIZE``), else 1."""
    env = os.environ if env is None else env
    return _first_int(env, ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE")) or 1


def world_size(env: Mapping[str, str] | None = None) -> int:
    """Number of processes of the run as the launcher states it (1 when not distributed)."""
    env = os.environ if env is None else env
    return _first_int(env, ("WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")) or 1


def is_rank_zero(env: Mapping[str, str] | None = None) -> bool:
    """True in the process that owns a run's side effects: the only process, or global rank 0.

    Safe to call before ``torch.distributed`` is initialised, and in the Lightning-spawned children that
    re-execute the command line.
    """
    return global_rank(env) == 0
