""":class:`~rfdetr_trainer.integrations.cvat.tasks.TaskApi` through cvat-sdk (CVAT 2.16 and later).

Uses the SDK's task proxy (``get_labels``, ``get_meta``, ``get_frame``, ``get_annotations``, ``get_jobs``,
``update_annotations(action=create)``, ``remove_annotations(ids=…)``) and builds shapes with the
``cvat_sdk.auto_annotation`` helpers (``rectangle``, ``polygon``), which make the same ``LabeledShapeRequest``
that SDK's own auto-annotation driver uploads. The client is built as for exports (``sdk._make_client``: no
version check, which crashes on servers before 2.30), and SDK exceptions become our one-line errors.
"""

from __future__ import annotations

import threading
from typing import Any

from rfdetr_trainer.integrations.cvat.base import Connection, Target
from rfdetr_trainer.integrations.cvat.sdk import SdkDownloader, _make_client
from rfdetr_trainer.integrations.cvat.tasks import (
    FrameInfo,
    JobInfo,
    LabelSpec,
    TaskApi,
    ValidationLayout,
    frames_from_meta,
    job_from_record,
    label_spec,
    layout_from_record,
    task_entry,
)

_ABSENT = object()


def _task_entry(task: Any) -> dict[str, Any]:
    """:func:`task_entry` of an SDK task proxy, through its public attributes (the proxy forwards them to the
    ``TaskRead`` model; a field the server did not send raises ``AttributeError``, so ``validation_mode`` stays
    absent on servers that predate it, as the HTTP clients leave it)."""
    record: dict[str, Any] = {"id": task.id, "subset": getattr(task, "subset", "") or ""}
    mode = getattr(task, "validation_mode", _ABSENT)
    if mode is not _ABSENT:
        record["validation_mode"] = _plain(mode)
    return task_entry(record)


def _plain(model: Any) -> Any:
    """An SDK model (or list of them) as plain JSON-like data, enum wrappers unwrapped."""
    from cvat_sdk.api_client.model_utils import ModelSimple, model_to_dict

    if isinstance(model, list):
        return [_plain(m) for m in model]
    if isinstance(model, ModelSimple):
        return model.value
    if hasattr(model, "_data_store"):
        return {k: _unwrap(v) for k, v in model_to_dict(model, serialize=True).items()}
    return model


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"value"}:
        return value["value"]
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class SdkTaskApi(TaskApi):
    """Task reads and writes through cvat-sdk's proxies."""

    name = "sdk"

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        # SdkDownloader owns the error mapping and retry policy for SDK calls; reuse it rather than copy it.
        self._calls = SdkDownloader(conn)
        self._client: Any = None
        self._tasks: dict[int, Any] = {}

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing must not mask the real outcome
                pass

    def _call(self, task_id: int | None, doing: str, fn: Any) -> Any:
        target = Target("task", task_id) if task_id is not None else None
        return self._calls._call(target, doing, fn)

    def _sdk(self) -> Any:
        """The logged-in SDK client, made on first use."""
        if self._client is None:
            self._client = self._call(None, "login", lambda: _make_client(self.conn, threading.local()))
        return self._client

    def _task(self, task_id: int) -> Any:
        if task_id not in self._tasks:
            self._tasks[task_id] = self._call(task_id, "reading", lambda: self._sdk().tasks.retrieve(task_id))
        return self._tasks[task_id]

    def labels(self, task_id: int) -> list[LabelSpec]:
        task = self._task(task_id)
        return [label_spec(_plain(m)) for m in self._call(task_id, "reading labels", task.get_labels)]

    def frames(self, task_id: int) -> list[FrameInfo]:
        task = self._task(task_id)
        return frames_from_meta(_plain(self._call(task_id, "reading frame list", task.get_meta)))

    def frame_bytes(self, task_id: int, frame: int) -> bytes:
        task = self._task(task_id)
        data = self._call(task_id, f"downloading frame {frame}", lambda: task.get_frame(frame, quality="original"))
        return data.read()

    def annotations(self, task_id: int) -> dict[str, Any]:
        task = self._task(task_id)
        data = _plain(self._call(task_id, "reading annotations", task.get_annotations))
        return {"shapes": data.get("shapes") or [], "tags": data.get("tags") or [],
                "tracks": data.get("tracks") or []}

    def create_shapes(self, task_id: int, shapes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from cvat_sdk import auto_annotation as cvataa
        from cvat_sdk import models
        from cvat_sdk.core.proxies.annotations import AnnotationUpdateAction

        requests = []
        for s in shapes:
            make = cvataa.rectangle if s["type"] == "rectangle" else cvataa.polygon
            extra = {k: s[k] for k in ("score", "group") if s.get(k) is not None}
            shape = make(s["label_id"], [float(v) for v in s["points"]], source=s["source"],
                         attributes=[models.AttributeValRequest(spec_id=a["spec_id"], value=str(a["value"]))
                                     for a in s.get("attributes", [])], **extra)
            shape.frame = s["frame"]
            requests.append(shape)
        task = self._task(task_id)
        self._call(task_id, "uploading annotations (create)", lambda: task.update_annotations(
            models.PatchedLabeledDataRequest(shapes=requests), action=AnnotationUpdateAction.CREATE))
        return shapes

    def delete_shapes(self, task_id: int, shapes: list[dict[str, Any]]) -> None:
        task = self._task(task_id)
        ids = {int(s["id"]) for s in shapes}
        self._call(task_id, "uploading annotations (delete)", lambda: task.remove_annotations(ids=ids))

    def jobs(self, task_id: int) -> list[JobInfo]:
        task = self._task(task_id)
        out = []
        for job in self._call(task_id, "reading jobs", task.get_jobs):
            record = {k: _unwrap(_plain(getattr(job, k, None)))
                      for k in ("id", "type", "stage", "state", "start_frame", "stop_frame")}
            included = None
            if record.get("type") == "ground_truth":
                meta = _plain(self._call(task_id, "reading ground-truth frames", job.get_meta))
                included = list(meta.get("included_frames") or [])
            out.append(job_from_record(record, included))
        return out

    def validation_layout(self, task_id: int) -> ValidationLayout | None:
        from cvat_sdk.api_client.exceptions import NotFoundException

        self._task(task_id)
        api = self._client.api_client.tasks_api

        def read() -> Any:
            try:
                layout, _ = api.retrieve_validation_layout(task_id)
            except NotFoundException:
                return None
            return layout

        layout = self._call(task_id, "reading validation layout", read)
        return None if layout is None else layout_from_record(_plain(layout))

    def job_annotations(self, task_id: int, job_id: int) -> dict[str, Any]:
        self._task(task_id)
        job = self._call(task_id, f"reading job {job_id}", lambda: self._client.jobs.retrieve(job_id))
        data = _plain(self._call(task_id, f"reading annotations of job {job_id}", job.get_annotations))
        return {"shapes": data.get("shapes") or [], "tags": data.get("tags") or [],
                "tracks": data.get("tracks") or []}

    def project_tasks(self, project_id: int) -> list[dict[str, Any]]:
        client = self._sdk()
        project = self._calls._call(Target("project", project_id), "reading",
                                    lambda: client.projects.retrieve(project_id))
        tasks = self._calls._call(Target("project", project_id), "listing tasks", project.get_tasks)
        for task in tasks:
            self._tasks.setdefault(int(task.id), task)
        return [_task_entry(t) for t in tasks]
