"""ClearML experiment tracking (rfdetr 1.11 has none of its own).

Light to import: ``clearml`` and Lightning are imported inside functions only.

Runner wiring (rank 0 only — :func:`rfdetr_trainer.distributed.is_rank_zero`)::

    tm = TaskManager(settings.experiment.clearml)
    tm.init_task(task_name=run_name)              # False + one warning when unreachable (unless required)
    settings = tm.connect_params(settings)        # UI edits win under clearml-agent
    if settings.experiment.clearml.remote_queue and enqueue_remote(tm, settings.experiment.clearml.remote_queue):
        return                                    # queued; the agent runs the same command
    tm.log_dataset_info(manifest, dataset_dir=dataset_dir)
    train(..., extra_callbacks=[make_callback(tm, settings.experiment.clearml)])
    tm.log_model(result.best_checkpoint, name="best", class_names=..., metrics=result.final_metrics)
    tm.close()
"""

from __future__ import annotations

from typing import Any

from rfdetr_trainer.integrations.clearml.remote import enqueue_remote
from rfdetr_trainer.integrations.clearml.task import TaskManager


def make_callback(task_manager: TaskManager, cfg: Any) -> Any:
    """The Lightning callback reporting to ``task_manager``'s task (a no-op when it isn't active).

    Args:
        task_manager: the run's TaskManager.
        cfg: the ``experiment.clearml`` section (``log_every_n_steps``, ``debug_images_every_n_epochs``).
    """
    from rfdetr_trainer.integrations.clearml.callback import ClearMLCallback

    return ClearMLCallback(task_manager, log_every_n_steps=cfg.log_every_n_steps,
                           debug_images_every_n_epochs=cfg.debug_images_every_n_epochs)


__all__ = ["TaskManager", "enqueue_remote", "make_callback"]
