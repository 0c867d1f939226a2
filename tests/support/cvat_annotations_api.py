"""The annotation side of the fake CVAT server: labels, jobs, frames, data meta, annotations, validation layout.

Shapes follow cvat-sdk 2.80's models (``api_client/model/{label,job_read,data_meta_read,frame_meta,labeled_data,
labeled_shape,task_validation_layout_read}.py``) and CVAT's server behaviour:

- ``GET {P}/labels?task_id=`` (paginated, 2.x); before 2.3 the task record carries its labels inline, which is
  also what 1.x answers. Label ids are unique per server; attribute spec ids too.
- ``GET /api/jobs?task_id=`` (paginated ``JobRead``: ``type`` annotation|ground_truth, ``stage``, ``state``,
  ``start_frame``/``stop_frame``); ``GET /api/jobs/{id}/data/meta`` lists a ground-truth job's
  ``included_frames``. 1.x has no ``/jobs`` list: the task record carries ``segments[].jobs[]`` with a ``status``.
- ``GET {P}/tasks/{id}/data/meta`` (frames with names and sizes), ``GET {P}/tasks/{id}/data?type=frame&number=N``
  (the frame's bytes).
- ``GET|PUT|PATCH|DELETE {P}/tasks/{id}/annotations``: PUT replaces everything, PATCH ``action=create`` appends
  with new ids, ``update`` replaces by id, ``delete`` removes by id; each write bumps ``version`` and the task's
  ``updated_date`` (so the next fetch exports again). Unknown labels, frames, attribute specs or sources are 400.
- ``GET /api/tasks/{id}/validation_layout`` (2.24+): ``mode`` gt|gt_pool, ``validation_frames``,
  ``honeypot_frames`` and ``honeypot_real_frames``.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from support.cvat_data import FakeProject, FakeTask

SOURCES_2X = {"manual", "auto", "semi-auto", "file", "consensus"}
SOURCES_1X = {"manual", "auto"}
SHAPE_TYPES = {"rectangle", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton"}


def label_ids(state: Any, task: FakeTask) -> list[int]:
    """Server-wide label ids of a task's labels (a project task uses its project's)."""
    if task.project_id is not None:
        return [10000 * task.project_id + i + 1 for i in range(len(state.projects[task.project_id].labels))]
    return [100 * task.id + i + 1 for i in range(len(task.labels))]


def label_names(state: Any, task: FakeTask) -> tuple[str, ...]:
    return state.projects[task.project_id].labels if task.project_id is not None else task.labels


def label_records(state: Any, task: FakeTask) -> list[dict[str, Any]]:
    """``Label`` records (``api_client/model/label.py``) with their attribute specs."""
    out = []
    for lid, name in zip(label_ids(state, task), label_names(state, task)):
        attrs = []
        for j, spec in enumerate(task.label_attributes.get(name, [])):
            attrs.append({"id": lid * 10 + j + 1, "name": spec["name"], "mutable": spec.get("mutable", False),
                          "input_type": spec.get("input_type", "text"), "values": list(spec.get("values", [])),
                          "default_value": spec.get("default_value", "")})
        out.append({"id": lid, "name": name, "color": "#ff0000", "attributes": attrs, "type": "any",
                    "svg": "", "sublabels": [], "project_id": task.project_id,
                    "task_id": None if task.project_id is not None else task.id, "parent_id": None,
                    "has_parent": False})
    return out


def annotation_ranges(task: FakeTask) -> list[tuple[int, int]]:
    """Frame ranges of the annotation jobs (a gt_pool's validation frames sit after them)."""
    pool = set(task.gt_frames) if task.validation_mode == "gt_pool" else set()
    frames = [f for f in range(task.n_images) if f not in pool]
    if not frames:
        return []
    size = task.segment_size or len(frames)
    return [(frames[i], frames[min(i + size, len(frames)) - 1]) for i in range(0, len(frames), size)]


def jobs_of(task: FakeTask, base: str) -> list[dict[str, Any]]:
    """``JobRead`` records of a task: annotation jobs, then its ground-truth job if it has one."""
    jobs = []
    for k, (start, stop) in enumerate(annotation_ranges(task)):
        stage, state = task.job_states[k] if k < len(task.job_states) else ("annotation", "new")
        jobs.append(_job(task, base, 100 * task.id + k + 1, "annotation", stage, state, start, stop,
                         stop - start + 1))
    if task.gt_frames:
        jobs.append(_job(task, base, 100 * task.id + 99, "ground_truth", "acceptance", "completed",
                         min(task.gt_frames), max(task.gt_frames), len(task.gt_frames)))
    return jobs


def _job(task: FakeTask, base: str, job_id: int, kind: str, stage: str, state: str, start: int, stop: int,
         count: int) -> dict[str, Any]:
    return {
        "url": f"{base}/jobs/{job_id}", "id": job_id, "task_id": task.id, "project_id": task.project_id,
        "assignee": None, "guide_id": None, "dimension": "2d", "bug_tracker": None,
        "status": "completed" if stage == "acceptance" else stage, "stage": stage, "state": state,
        "mode": "annotation", "frame_count": count, "start_frame": start, "stop_frame": stop,
        "data_chunk_size": 36, "data_compressed_chunk_type": "imageset", "data_original_chunk_type": "imageset",
        "created_date": "2024-01-01T00:00:00.000000Z", "updated_date": task.updated_date, "type": kind,
        "organization": None, "target_storage": None, "source_storage": None,
        "issues": {"count": 0, "url": f"{base}/issues?job_id={job_id}"},
        "labels": {"url": f"{base}/labels?job_id={job_id}"},
    }


def default_shapes(state: Any, task: FakeTask) -> list[dict[str, Any]]:
    """What the export shows for an untouched task: one manual box per frame (``cvat_data.coco_json``)."""
    ids = label_ids(state, task)
    shapes = []
    for frame in range(task.n_images):
        shapes.append({"id": 0, "type": "rectangle", "frame": frame, "label_id": ids[frame % len(ids)],
                       "points": [2.0, 3.0, 12.0, 11.0], "group": 0, "source": "manual", "occluded": False,
                       "outside": False, "z_order": 0, "rotation": 0.0, "attributes": [], "elements": []})
    return shapes


class AnnotationRoutes:
    """Handler methods mixed into the fake server's request handler (``self`` is that handler)."""

    server: Any
    body: bytes
    command: str

    def annotation_routes(self, p: str) -> list[tuple[str, str, Any]]:
        return [
            ("GET", rf"^{p}/labels/?$", self._labels),
            ("GET", r"^/api/jobs/?$", self._jobs),
            ("GET", r"^/api/jobs/(\d+)/?$", self._job),
            ("GET", r"^/api/jobs/(\d+)/data/meta/?$", self._job_meta),
            ("GET", r"^/api/jobs/(\d+)/annotations/?$", self._job_annotations),
            ("GET", rf"^{p}/tasks/(\d+)/data/meta/?$", self._meta),
            ("GET", rf"^{p}/tasks/(\d+)/data/?$", self._frame),
            ("GET", r"^/api/tasks/(\d+)/validation_layout/?$", self._validation_layout),
            ("GET", rf"^{p}/tasks/(\d+)/annotations/?$", self._annotations_get),
            ("PUT", rf"^{p}/tasks/(\d+)/annotations/?$", self._annotations_put),
            ("PATCH", rf"^{p}/tasks/(\d+)/annotations/?$", self._annotations_patch),
            ("DELETE", rf"^{p}/tasks/(\d+)/annotations/?$", self._annotations_delete),
        ]

    # -- helpers ----------------------------------------------------------------------------------------------

    def _task_for(self, task_id: str | int) -> FakeTask | None:
        user = self._auth()  # type: ignore[attr-defined]
        if user is None:
            return None
        return self._lookup("tasks", int(task_id), user)  # type: ignore[attr-defined,return-value]

    def _page(self, query: dict, items: list[dict[str, Any]], path: str) -> dict[str, Any]:
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("page_size", ["2"])[0])  # small pages, so clients must follow ``next``
        chunk = items[(page - 1) * size:page * size]
        more = page * size < len(items)
        base = f"{self.server.state.base_url}{path}"
        rest = "&".join(f"{k}={v[0]}" for k, v in query.items() if k not in ("page",))
        nxt = f"{base}?{rest}&page={page + 1}" if more else None
        return {"count": len(items), "next": nxt, "previous": None, "results": chunk}

    def _stored(self, task: FakeTask) -> list[dict[str, Any]]:
        st = self.server.state
        if task.shapes is None:
            task.shapes = default_shapes(st, task)
            for shape in task.shapes:
                st.next_id += 1
                shape["id"] = st.next_id
        return task.shapes

    def _touch(self, task: FakeTask) -> None:
        task.version += 1
        stamp = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=task.version)
        task.updated_date = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.server.state.jobs.clear()  # finished exports are stale now

    # -- read -------------------------------------------------------------------------------------------------

    def _labels(self, query: dict) -> None:
        st = self.server.state
        if st.v < (2, 3):
            self._detail(404, "Not found.")  # type: ignore[attr-defined]
            return
        task_id = query.get("task_id", [None])[0]
        task = self._task_for(task_id) if task_id else None
        if task is None:
            if not task_id:
                self._send(400, ["task_id, project_id or job_id is required"])  # type: ignore[attr-defined]
            return
        self._send(200, self._page(query, label_records(st, task), f"{st.prefix}/labels"))  # type: ignore[attr-defined]

    def _jobs(self, query: dict) -> None:
        st = self.server.state
        if st.v < (2, 0):
            self._detail(404, "Not found.")  # type: ignore[attr-defined]
            return
        task = self._task_for(query.get("task_id", ["0"])[0])
        if task is None:
            return
        jobs = jobs_of(task, f"{st.base_url}/api")
        if st.v < (2, 5):  # ground-truth jobs arrived with quality control
            jobs = [j for j in jobs if j["type"] == "annotation"]
        self._send(200, self._page(query, jobs, "/api/jobs"))  # type: ignore[attr-defined]

    def _find_job(self, job_id: str) -> tuple[FakeTask, dict[str, Any]] | None:
        st = self.server.state
        task = st.tasks.get(int(job_id) // 100)
        job = next((j for j in jobs_of(task, f"{st.base_url}/api") if j["id"] == int(job_id)), None) if task else None
        if job is None or self._task_for(task.id) is None:  # type: ignore[union-attr]
            if job is None:
                self._detail(404, "No Job matches the given query.")  # type: ignore[attr-defined]
            return None
        return task, job  # type: ignore[return-value]

    def _job(self, query: dict, job_id: str) -> None:
        found = self._find_job(job_id)
        if found:
            self._send(200, found[1])  # type: ignore[attr-defined]

    def _job_meta(self, query: dict, job_id: str) -> None:
        found = self._find_job(job_id)
        if not found:
            return
        task, job = found
        meta = self._meta_body(task)
        if job["type"] == "ground_truth":
            meta["included_frames"] = sorted(task.gt_frames)
        meta.update(start_frame=job["start_frame"], stop_frame=job["stop_frame"])
        self._send(200, meta)  # type: ignore[attr-defined]

    def _job_annotations(self, query: dict, job_id: str) -> None:
        """A job's own annotations: a ground-truth job holds the experts' shapes, apart from the task's."""
        found = self._find_job(job_id)
        if not found:
            return
        task, job = found
        st = self.server.state
        if job["type"] == "ground_truth":
            if task.gt_shapes is None:
                first = label_ids(st, task)[0]
                task.gt_shapes = [{"id": 50000 + f, "type": "rectangle", "frame": f, "label_id": first,
                                   "points": [4.0, 4.0, 20.0, 20.0], "group": 0, "source": "manual",
                                   "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0,
                                   "attributes": [], "elements": []} for f in sorted(task.gt_frames)]
            shapes = task.gt_shapes
        else:
            gt = set(task.gt_frames)
            shapes = [s for s in self._stored(task)
                      if job["start_frame"] <= s["frame"] <= job["stop_frame"] and s["frame"] not in gt]
        self._send(200, {"version": task.version, "tags": [], "shapes": copy.deepcopy(shapes),  # type: ignore[attr-defined]
                         "tracks": []})

    def _meta_body(self, task: FakeTask) -> dict[str, Any]:
        frames = [{"name": n, "width": w, "height": h, "related_files": 0, "has_related_context": False}
                  for n, w, h in task.images()]
        body: dict[str, Any] = {"chunk_size": 36, "size": len(frames), "image_quality": 70, "start_frame": 0,
                                "stop_frame": len(frames) - 1, "frame_filter": "", "frames": frames,
                                "deleted_frames": [], "included_frames": None}
        if self.server.state.v >= (2, 0):
            body.update(chunks_updated_date="2024-01-01T00:00:00.000000Z", storage="local", cloud_storage_id=None)
        return body

    def _meta(self, query: dict, task_id: str) -> None:
        task = self._task_for(task_id)
        if task is not None:
            self._send(200, self._meta_body(task))  # type: ignore[attr-defined]

    def _frame(self, query: dict, task_id: str) -> None:
        task = self._task_for(task_id)
        if task is None:
            return
        if query.get("type", [""])[0] != "frame":
            self._send(400, ["type: only 'frame' is served by this fake"])  # type: ignore[attr-defined]
            return
        number = int(query.get("number", ["-1"])[0])
        if not 0 <= number < task.n_images:
            self._send(400, [f"The frame number should be in the [0, {task.n_images - 1}] range"])  # type: ignore[attr-defined]
            return
        data = task.frame_bytes(number)
        ctype = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
        self._send(200, data, ctype=ctype)  # type: ignore[attr-defined]

    def _validation_layout(self, query: dict, task_id: str) -> None:
        if self.server.state.v < (2, 24):
            self._detail(404, "Not found.")  # type: ignore[attr-defined]
            return
        task = self._task_for(task_id)
        if task is None:
            return
        pool = task.validation_mode == "gt_pool"
        self._send(200, {  # type: ignore[attr-defined]
            "mode": task.validation_mode, "frames_per_job_count": None,
            "validation_frames": sorted(task.gt_frames), "disabled_frames": [],
            "honeypot_count": len(task.honeypots) if pool else 0,
            "honeypot_frames": sorted(task.honeypots) if pool else [],
            "honeypot_real_frames": [task.honeypots[f] for f in sorted(task.honeypots)] if pool else [],
        })

    def _annotations_get(self, query: dict, task_id: str) -> None:
        if "format" in query:  # the legacy export resource shares this path
            self._legacy(query, "tasks", task_id, "annotations")  # type: ignore[attr-defined]
            return
        task = self._task_for(task_id)
        if task is None:
            return
        with self.server.state.lock:
            shapes = copy.deepcopy(self._stored(task))
        self._send(200, {"version": task.version, "tags": task.tags, "shapes": shapes,  # type: ignore[attr-defined]
                         "tracks": task.tracks})

    # -- write ------------------------------------------------------------------------------------------------

    def _payload(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self._send(400, {"detail": "JSON parse error"})  # type: ignore[attr-defined]
            return None
        return data

    def _clean(self, task: FakeTask, shapes: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Validate incoming shapes as the server's serializer does and fill its defaults; None after a 400."""
        st = self.server.state
        labels = {rec["id"]: rec for rec in label_records(st, task)}
        sources = SOURCES_2X if st.v >= (2, 0) else SOURCES_1X
        out = []
        for i, raw in enumerate(shapes):
            error = None
            label = labels.get(raw.get("label_id"))
            specs = {a["id"] for a in label["attributes"]} if label else set()
            if raw.get("type") not in SHAPE_TYPES:
                error = f"shapes[{i}].type: {raw.get('type')!r} is not a valid choice."
            elif label is None:
                error = f"shapes[{i}]: label_id {raw.get('label_id')} is not a label of task {task.id}"
            elif not isinstance(raw.get("frame"), int) or not 0 <= raw["frame"] < task.n_images:
                error = f"shapes[{i}]: frame {raw.get('frame')} is outside the task"
            elif raw.get("source", "manual") not in sources:
                error = f"shapes[{i}].source: {raw.get('source')!r} is not a valid choice."
            elif any(a.get("spec_id") not in specs for a in raw.get("attributes", [])):
                error = f"shapes[{i}]: attribute spec is not one of label {label['name']!r}"
            elif raw["type"] == "rectangle" and len(raw.get("points", [])) != 4:
                error = f"shapes[{i}]: a rectangle has 4 point values"
            if error:
                self._send(400, [error])  # type: ignore[attr-defined]
                return None
            shape = {"type": raw["type"], "frame": raw["frame"], "label_id": raw["label_id"],
                     "points": [float(v) for v in raw.get("points", [])], "group": raw.get("group") or 0,
                     "source": raw.get("source", "manual"), "occluded": bool(raw.get("occluded", False)),
                     "outside": bool(raw.get("outside", False)), "z_order": int(raw.get("z_order", 0)),
                     "rotation": float(raw.get("rotation", 0.0)),
                     "attributes": [{"spec_id": a["spec_id"], "value": str(a["value"])}
                                    for a in raw.get("attributes", [])], "elements": []}
            if st.v >= (2, 0) and raw.get("score") is not None:
                shape["score"] = float(raw["score"])
            if raw.get("id") is not None:
                shape["id"] = raw["id"]
            out.append(shape)
        return out

    def _assign(self, shapes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        st = self.server.state
        for shape in shapes:
            st.next_id += 1
            shape["id"] = st.next_id
        return shapes

    def _annotations_put(self, query: dict, task_id: str) -> None:
        task = self._task_for(task_id)
        data = self._payload() if task is not None else None
        if data is None:
            return
        with self.server.state.lock:
            shapes = self._clean(task, data.get("shapes", []))  # type: ignore[arg-type]
            if shapes is None:
                return
            task.shapes = self._assign(shapes)  # type: ignore[union-attr]
            task.tags, task.tracks = list(data.get("tags", [])), list(data.get("tracks", []))  # type: ignore[union-attr]
            self._touch(task)  # type: ignore[arg-type]
            body = {"version": task.version, "tags": task.tags, "shapes": task.shapes, "tracks": task.tracks}  # type: ignore[union-attr]
        self._send(200, body)  # type: ignore[attr-defined]

    def _annotations_patch(self, query: dict, task_id: str) -> None:
        action = query.get("action", [""])[0]
        if action not in ("create", "update", "delete"):
            self._send(400, ["Please specify a correct 'action' for the request"])  # type: ignore[attr-defined]
            return
        task = self._task_for(task_id)
        data = self._payload() if task is not None else None
        if data is None:
            return
        st = self.server.state
        with st.lock:
            stored = self._stored(task)  # type: ignore[arg-type]
            incoming = data.get("shapes", [])
            if action == "delete":
                ids = {s.get("id") for s in incoming}
                gone = [s for s in stored if s["id"] in ids]
                task.shapes = [s for s in stored if s["id"] not in ids]  # type: ignore[union-attr]
                result = gone
            else:
                shapes = self._clean(task, incoming)  # type: ignore[arg-type]
                if shapes is None:
                    return
                if action == "create":
                    result = self._assign(shapes)
                    stored.extend(result)
                else:
                    by_id = {s["id"]: n for n, s in enumerate(stored)}
                    missing = [s.get("id") for s in shapes if s.get("id") not in by_id]
                    if missing:
                        self._send(400, [f"shapes with ids {missing} do not exist"])  # type: ignore[attr-defined]
                        return
                    for shape in shapes:
                        stored[by_id[shape["id"]]] = shape
                    result = shapes
            self._touch(task)  # type: ignore[arg-type]
            body = {"version": task.version, "tags": [], "shapes": copy.deepcopy(result), "tracks": []}  # type: ignore[union-attr]
        self._send(200, body)  # type: ignore[attr-defined]

    def _annotations_delete(self, query: dict, task_id: str) -> None:
        task = self._task_for(task_id)
        if task is None:
            return
        with self.server.state.lock:
            task.shapes, task.tags, task.tracks = [], [], []
            self._touch(task)
        self._send(204)  # type: ignore[attr-defined]


def inline_labels(state: Any, obj: FakeTask | FakeProject) -> list[dict[str, Any]]:
    """Labels as a pre-2.3 task record carries them (``labels: [...]``)."""
    if isinstance(obj, FakeProject):
        return []
    return label_records(state, obj)


def legacy_segments(task: FakeTask, base: str) -> list[dict[str, Any]]:
    """1.x: jobs are listed in the task record, with a single ``status`` (annotation|validation|completed)."""
    segments = []
    for job in jobs_of(task, base):
        if job["type"] != "annotation":
            continue
        status = "completed" if job["state"] == "completed" else job["stage"]
        segments.append({"start_frame": job["start_frame"], "stop_frame": job["stop_frame"],
                         "jobs": [{"id": job["id"], "url": job["url"], "status": status, "assignee": None}]})
    return segments
