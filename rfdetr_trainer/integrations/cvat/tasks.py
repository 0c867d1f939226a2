"""Reading and writing a CVAT task's labels, frames, jobs and annotations (the pre-annotation and job-filter side).

:class:`TaskApi` is what ``annotate`` and the job filters of ``fetch`` need from a server; two implementations
speak it: :class:`HttpTaskApi` (the project's own client, for every server from 1.x, ``/api/v1`` included) and
``tasks_sdk.SdkTaskApi`` (cvat-sdk, 2.16 and later). Everything crosses this boundary as plain dicts in CVAT's
JSON shape (``LabeledShape``: ``type``, ``frame``, ``label_id``, ``points`` in pixels, ``source``,
``attributes[{spec_id, value}]``), so the service never sees which client ran.

Server facts (cvat-sdk 2.80 models; CVAT server sources):

- Labels: ``GET /api/labels?task_id=`` (paginated) since 2.3; earlier task records carry ``labels: [...]``.
- Jobs: ``GET /api/jobs?task_id=`` (``type`` annotation|ground_truth, ``stage``, ``state``, frame range) since
  2.0; 1.x lists ``segments[].jobs[]`` with a ``status`` in the task record. A ground-truth job's frames are
  ``included_frames`` of ``GET /api/jobs/{id}/data/meta``.
- ``GET {P}/tasks/{id}/data/meta`` names every frame; ``GET {P}/tasks/{id}/data?type=frame&number=N`` serves it.
- ``PATCH {P}/tasks/{id}/annotations?action=create|delete`` appends or removes shapes by id.
- ``GET /api/tasks/{id}/validation_layout`` (2.24+): validation and honeypot frames of a ``gt_pool`` task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from rfdetr_trainer.errors import SourceError
from rfdetr_trainer.integrations.cvat.base import Connection, Target
from rfdetr_trainer.integrations.cvat.http import CvatHttp

#: ``source`` CVAT stores on shapes a model made (cvat-sdk's auto_annotation driver sets the same). CVAT's UI turns
#: an edited ``auto`` shape into ``semi-auto``, so a shape a person corrected is no longer ours.
AUTO_SOURCE = "auto"


@dataclass(frozen=True)
class LabelSpec:
    """A task label: its id, name and attribute specs by name (``{"id", "input_type", "values", ...}``)."""

    id: int
    name: str
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class FrameInfo:
    """One frame of a task's data."""

    frame: int
    name: str
    width: int
    height: int


@dataclass(frozen=True)
class JobInfo:
    """A CVAT job and the task frames it covers."""

    id: int
    type: str  # annotation | ground_truth
    stage: str  # annotation | validation | acceptance
    state: str  # new | in progress | completed | rejected
    frames: tuple[int, ...]


@dataclass(frozen=True)
class ValidationLayout:
    """Frames a task holds for quality control (``gt`` or ``gt_pool`` mode)."""

    mode: str | None
    validation_frames: tuple[int, ...] = ()
    honeypot_frames: tuple[int, ...] = ()


def label_spec(record: dict[str, Any]) -> LabelSpec:
    attrs = {str(a.get("name")): dict(a) for a in record.get("attributes") or []}
    return LabelSpec(int(record["id"]), str(record["name"]), attrs)


def job_from_record(record: dict[str, Any], included: list[int] | None = None) -> JobInfo:
    """A ``JobRead`` record (2.x) as a :class:`JobInfo`; ``included`` = a ground-truth job's frames."""
    start, stop = int(record.get("start_frame", 0)), int(record.get("stop_frame", -1))
    frames = tuple(included) if included is not None else tuple(range(start, stop + 1))
    state = str(record.get("state") or "new").replace("_", " ")
    return JobInfo(int(record["id"]), str(record.get("type") or "annotation"), str(record.get("stage") or
                   "annotation"), state, frames)


def jobs_from_segments(record: dict[str, Any]) -> list[JobInfo]:
    """1.x task record ``segments[].jobs[]``: ``status`` annotation|validation|completed becomes stage and state."""
    out = []
    for segment in record.get("segments") or []:
        frames = tuple(range(int(segment["start_frame"]), int(segment["stop_frame"]) + 1))
        for job in segment.get("jobs") or []:
            status = str(job.get("status") or "annotation")
            stage, state = ("acceptance", "completed") if status == "completed" else (status, "in progress")
            out.append(JobInfo(int(job["id"]), "annotation", stage, state, frames))
    return out


class TaskApi(ABC):
    """What pre-annotation and job filters need from a CVAT server, for one connection."""

    name = ""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abstractmethod
    def labels(self, task_id: int) -> list[LabelSpec]:
        """The task's labels (a project task's are its project's)."""

    @abstractmethod
    def frames(self, task_id: int) -> list[FrameInfo]:
        """The task's frames without deleted ones, in frame order."""

    @abstractmethod
    def frame_bytes(self, task_id: int, frame: int) -> bytes:
        """One frame in original quality."""

    @abstractmethod
    def annotations(self, task_id: int) -> dict[str, Any]:
        """``{"shapes", "tags", "tracks"}`` of the task, plain dicts."""

    @abstractmethod
    def create_shapes(self, task_id: int, shapes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append shapes (PATCH ``action=create``); the server's copies with their new ids."""

    @abstractmethod
    def delete_shapes(self, task_id: int, shapes: list[dict[str, Any]]) -> None:
        """Remove stored shapes by id (PATCH ``action=delete``)."""

    @abstractmethod
    def jobs(self, task_id: int) -> list[JobInfo]:
        """The task's jobs with the frames each covers."""

    @abstractmethod
    def validation_layout(self, task_id: int) -> ValidationLayout | None:
        """Validation and honeypot frames, or None where the server has no layout (before 2.24)."""

    @abstractmethod
    def job_annotations(self, task_id: int, job_id: int) -> dict[str, Any]:
        """One job's own annotations (a ground-truth job's are kept apart from the task's)."""

    @abstractmethod
    def project_tasks(self, project_id: int) -> list[dict[str, Any]]:
        """The project's tasks as ``{"id", "subset", "validation_mode"?}`` (the last only where the server says)."""


class HttpTaskApi(TaskApi):
    """:class:`TaskApi` over the project's HTTP client; ``prefix`` is ``/api`` (2.x) or ``/api/v1`` (1.x)."""

    name = "http"

    def __init__(self, conn: Connection, prefix: str = "/api") -> None:
        super().__init__(conn)
        self.http = CvatHttp(conn, prefix)
        self.prefix = prefix
        self._records: dict[int, dict[str, Any]] = {}

    def close(self) -> None:
        self.http.close()

    def _task(self, task_id: int) -> dict[str, Any]:
        if task_id not in self._records:
            self._records[task_id] = self.http.info(Target("task", task_id))
        return self._records[task_id]

    def _pages(self, path: str, target: Target, doing: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        url: str | None = path
        while url:
            page = self.http.get_json(url, target=target, doing=doing)
            if isinstance(page, list):  # unpaginated answers of old servers
                return out + page
            out.extend(page.get("results") or [])
            url = page.get("next")
        return out

    def labels(self, task_id: int) -> list[LabelSpec]:
        record = self._task(task_id)
        inline = record.get("labels")
        if isinstance(inline, list):
            return [label_spec(r) for r in inline]
        target = Target("task", task_id)
        return [label_spec(r) for r in self._pages(f"/labels?task_id={task_id}", target, "reading labels")]

    def frames(self, task_id: int) -> list[FrameInfo]:
        meta = self.http.get_json(f"/tasks/{task_id}/data/meta", target=Target("task", task_id),
                                  doing="reading frame list")
        return frames_from_meta(meta)

    def frame_bytes(self, task_id: int, frame: int) -> bytes:
        resp = self.http.request("GET", f"/tasks/{task_id}/data", target=Target("task", task_id),
                                 doing=f"downloading frame {frame}",
                                 params={"type": "frame", "number": frame, "quality": "original"})
        return resp.content

    def annotations(self, task_id: int) -> dict[str, Any]:
        data = self.http.get_json(f"/tasks/{task_id}/annotations", target=Target("task", task_id),
                                  doing="reading annotations")
        return {"shapes": list(data.get("shapes") or []), "tags": list(data.get("tags") or []),
                "tracks": list(data.get("tracks") or [])}

    def _patch(self, task_id: int, action: str, shapes: list[dict[str, Any]]) -> dict[str, Any]:
        resp = self.http.request("PATCH", f"/tasks/{task_id}/annotations", params={"action": action},
                                 json_body={"version": 0, "tags": [], "shapes": shapes, "tracks": []},
                                 target=Target("task", task_id), doing=f"uploading annotations ({action})")
        try:
            return resp.json()
        except ValueError:
            return {}

    def create_shapes(self, task_id: int, shapes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(self._patch(task_id, "create", shapes).get("shapes") or [])

    def delete_shapes(self, task_id: int, shapes: list[dict[str, Any]]) -> None:
        self._patch(task_id, "delete", shapes)

    def jobs(self, task_id: int) -> list[JobInfo]:
        target = Target("task", task_id)
        if self.prefix.endswith("/v1"):
            return jobs_from_segments(self._task(task_id))
        out = []
        for record in self._pages(f"/jobs?task_id={task_id}", target, "reading jobs"):
            included = None
            if record.get("type") == "ground_truth":
                meta = self.http.get_json(f"/jobs/{record['id']}/data/meta", target=target,
                                          doing="reading ground-truth frames")
                included = list(meta.get("included_frames") or [])
            out.append(job_from_record(record, included))
        return out

    def validation_layout(self, task_id: int) -> ValidationLayout | None:
        if self.prefix.endswith("/v1"):
            return None
        resp = self.http.request("GET", f"/tasks/{task_id}/validation_layout", target=Target("task", task_id),
                                 doing="reading validation layout", passthrough=(404, 405))
        if resp.status_code != 200:
            return None
        return layout_from_record(resp.json())


    def job_annotations(self, task_id: int, job_id: int) -> dict[str, Any]:
        data = self.http.get_json(f"/jobs/{job_id}/annotations", target=Target("task", task_id),
                                  doing=f"reading annotations of job {job_id}")
        return {"shapes": list(data.get("shapes") or []), "tags": list(data.get("tags") or []),
                "tracks": list(data.get("tracks") or [])}

    def project_tasks(self, project_id: int) -> list[dict[str, Any]]:
        target = Target("project", project_id)
        records = self._pages(f"/tasks?project_id={project_id}", target, "listing tasks")
        for record in records:
            self._records.setdefault(int(record["id"]), record)
        return [task_entry(r) for r in records if r.get("project_id") in (None, project_id)]


def task_entry(record: dict[str, Any]) -> dict[str, Any]:
    """``{"id", "subset", "validation_mode"?}`` of a task record (``validation_mode`` only where present)."""
    out: dict[str, Any] = {"id": int(record["id"]), "subset": record.get("subset") or ""}
    if "validation_mode" in record:
        out["validation_mode"] = record["validation_mode"]
    return out


def frames_from_meta(meta: Any) -> list[FrameInfo]:
    """``DataMetaRead`` frames as :class:`FrameInfo`, numbered from ``start_frame``, deleted ones dropped."""
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise SourceError("CVAT data/meta answered without a frame list")
    deleted = set(meta.get("deleted_frames") or [])
    out = []
    for i, rec in enumerate(meta["frames"]):
        if i not in deleted:
            out.append(FrameInfo(i, str(rec.get("name")), int(rec.get("width") or 0), int(rec.get("height") or 0)))
    return out


def layout_from_record(record: dict[str, Any]) -> ValidationLayout:
    return ValidationLayout(record.get("mode"), tuple(record.get("validation_frames") or ()),
                            tuple(record.get("honeypot_frames") or ()))


def make_task_api(conn: Connection, choice: str) -> TaskApi:
    """cvat-sdk for ``sdk`` (and for ``auto`` on 2.16+ servers), else the HTTP client with the server's prefix."""
    from rfdetr_trainer.integrations.cvat.select import CURRENT_FLOW_SINCE, server_about

    conn.announce()
    if choice == "sdk":
        from rfdetr_trainer.integrations.cvat.tasks_sdk import SdkTaskApi

        return SdkTaskApi(conn)
    if choice == "http":
        return HttpTaskApi(conn, "/api")
    version, prefix = server_about(conn)
    if choice == "auto" and version is not None and version >= CURRENT_FLOW_SINCE:
        from rfdetr_trainer.integrations.cvat.tasks_sdk import SdkTaskApi

        return SdkTaskApi(conn)
    return HttpTaskApi(conn, prefix)
