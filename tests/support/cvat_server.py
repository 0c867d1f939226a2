"""A local CVAT server that follows ../shared/docs/cvat-protocol.md, for one chosen server version.

Behaviour switches on ``version`` exactly where the protocol document puts the boundaries:

- < 2.0: everything under ``/api/v1``; >= 2.0: ``/api``.
- ``/server/about``: 5 fields from 2.30, 3 before (cvat-sdk's make_client crashes on those).
- current flow (POST ``…/dataset/export`` + ``/api/requests``) from 2.16; ``result_url`` is the legacy
  ``…&action=download`` URL until 2.31 and ``…/dataset/download?rq_id=`` from 2.32; legacy GET → 410 from 2.32.
- legacy GET state machine: 202 while queued/running (``{"rq_id"}`` bodies from 2.16/2.17), 201 when done,
  200 + job deleted on ``action=download``, 500 with a JSON-string body on failure; ``action=download``
  before the end re-enqueues up to 2.14.2 and is a 400 from 2.14.3; from 2.14.3 cookie-only auth is refused on
  legacy GETs without ``action=download`` (the CSRF workaround).
- Auth: ``Token`` (key from login), ``Bearer`` PATs (2.48+), ``Basic``, session cookies with CSRF on unsafe
  methods. Wrong password at login → 400; bad token → 401 "Invalid token."; 403 on others' tasks.
- 404 bodies: "No Task matches the given query." from 2.23.1, "Not found." before.
- rq_id: ``action=export&target=task&…`` from 2.38, ``export:task-1-dataset-in-COCO_1@0-format-by-1`` before.

Exports are simulated with a delay (``export_delay``): queued for the first half, started for the second.
Faults: ``fail_next(pattern, n)`` answers 500 to the next n matching requests; ``drop_downloads`` cuts the
connection halfway through that many downloads; ``FakeTask.fail_export`` / ``evil_entries``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from support.cvat_annotations_api import AnnotationRoutes, inline_labels, label_ids, legacy_segments
from support.cvat_data import FakeProject, FakeTask, build_export
from support.loopback import Handler, LoopbackServer

FORMAT = "COCO 1.0"


def V(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


@dataclass
class Job:
    rq_id: str
    kind: str
    obj_id: int
    save_images: bool
    user: str
    created: float
    delay: float
    fail: str | None
    data: bytes | None = None

    def state(self) -> str:
        elapsed = time.monotonic() - self.created
        if elapsed < self.delay / 2:
            return "queued"
        if elapsed < self.delay:
            return "started"
        return "failed" if self.fail else "finished"


@dataclass
class CvatState:
    """Everything the fake server knows; tests mutate it to set up cases and read ``log`` to assert."""

    version: str = "2.73.0"
    users: dict[str, str] = field(default_factory=lambda: {"admin": "secret", "other": "pw2"})
    pats: dict[str, str] = field(default_factory=lambda: {"pat-admin-0123456789": "admin"})
    tasks: dict[int, FakeTask] = field(default_factory=dict)
    projects: dict[int, FakeProject] = field(default_factory=dict)
    export_delay: float = 0.05
    drop_downloads: int = 0
    base_url: str = ""
    log: list[tuple[str, str]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)
    jobs: dict[tuple, Job] = field(default_factory=dict)
    faults: list[list] = field(default_factory=list)
    next_id: int = 0  # annotation ids, server-wide
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def v(self) -> tuple[int, ...]:
        return V(self.version)

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.v < (2, 0) else "/api"

    def add_task(self, task: FakeTask) -> FakeTask:
        self.tasks[task.id] = task
        return task

    def add_project(self, project: FakeProject, tasks: list[FakeTask]) -> FakeProject:
        for task in tasks:
            task.project_id = project.id
            self.add_task(task)
        project.task_ids = [t.id for t in tasks]
        self.projects[project.id] = project
        return project

    def fail_next(self, pattern: str, times: int, status: int = 500) -> None:
        """Answer ``status`` to the next ``times`` requests whose method + path matches ``pattern``."""
        self.faults.append([re.compile(pattern), times, status])

    def count(self, pattern: str) -> int:
        """How many logged requests (``"METHOD /path?query"``) match ``pattern``."""
        rx = re.compile(pattern)
        return sum(1 for m, p in self.log if rx.search(f"{m} {p}"))


class _Handler(AnnotationRoutes, Handler):
    # -- responses ----------------------------------------------------------------------------------------------

    def _send(self, status: int, body: Any = None, *, ctype: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        if body is None:
            data = b""
        elif isinstance(body, bytes):
            data = body
        elif ctype == "application/json":
            data = json.dumps(body).encode()
        else:
            data = str(body).encode()
        self.send_body(status, data, ctype, headers)

    def _detail(self, status: int, detail: str, **headers: str) -> None:
        self._send(status, {"detail": detail}, headers=headers or None)

    def _send_file(self, data: bytes, filename: str) -> None:
        st = self.server.state
        with st.lock:
            drop = st.drop_downloads > 0
            if drop:
                st.drop_downloads -= 1
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.end_headers()
        if drop:
            # Half the body, then the connection goes away: the client sees a short read.
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    # -- auth -----------------------------------------------------------------------------------------------------

    def _cookies(self) -> dict[str, str]:
        jar = SimpleCookie(self.headers.get("Cookie", ""))
        return {k: m.value for k, m in jar.items()}

    def _auth(self, *, allow_session: bool = True) -> str | None:
        """The user, or None after answering 401/403."""
        st = self.server.state
        header = self.headers.get("Authorization", "")
        scheme, _, cred = header.partition(" ")
        if scheme == "Token":
            user = st.tokens.get(cred)
            if user is None:
                self._detail(401, "Invalid token.")
            return user
        if scheme == "Bearer" and st.v >= (2, 48):
            user = st.pats.get(cred)
            if user is None:
                self._detail(401, "Invalid token.")
            return user
        if scheme == "Basic":
            try:
                name, _, pw = base64.b64decode(cred).decode().partition(":")
            except ValueError:
                name, pw = "", ""
            if st.users.get(name) != pw or not name:
                self._detail(401, "Invalid username/password.")
                return None
            return name
        cookies = self._cookies()
        session = st.sessions.get(cookies.get("sessionid", ""))
        if session and allow_session:
            user, csrf = session
            if self.command not in ("GET", "HEAD", "OPTIONS") and (
                self.headers.get("X-CSRFToken") != csrf or cookies.get("csrftoken") != csrf
            ):
                self._detail(403, "CSRF Failed: CSRF token missing.")
                return None
            return user
        self._detail(401, "Authentication credentials were not provided.", **{"WWW-Authenticate": "Token"})
        return None

    def _not_found(self, kind: str) -> None:
        model = "Task" if kind == "tasks" else "Project"
        detail = f"No {model} matches the given query." if self.server.state.v >= (2, 23, 1) else "Not found."
        self._detail(404, detail)

    def _lookup(self, kind: str, obj_id: int, user: str) -> FakeTask | FakeProject | None:
        st = self.server.state
        obj = (st.tasks if kind == "tasks" else st.projects).get(obj_id)
        if obj is None:
            self._not_found(kind)
            return None
        if obj.owner != user:
            self._detail(403, "You do not have permission to perform this action.")
            return None
        return obj

    # -- routing --------------------------------------------------------------------------------------------------

    def _route(self) -> None:
        st = self.server.state
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        with st.lock:
            st.log.append((self.command, self.path))
            for fault in st.faults:
                if fault[1] > 0 and fault[0].search(f"{self.command} {self.path}"):
                    fault[1] -= 1
                    self._send(fault[2], "Internal Server Error", ctype="text/html")
                    return
        p = st.prefix
        routes = [
            ("GET", rf"^{p}/server/about$", self._about),
            ("POST", rf"^{p}/auth/login$", self._login),
            ("POST", rf"^{p}/auth/logout$", self._logout),
            ("GET", rf"^{p}/(tasks|projects)/(\d+)$", self._read),
            ("GET", rf"^{p}/tasks/?$", self._task_list),
            ("POST", r"^/api/(tasks|projects)/(\d+)/dataset/export$", self._export_v2),
            ("GET", r"^/api/requests/(.+)$", self._request_status),
            ("GET", r"^/api/(tasks|projects)/(\d+)/dataset/download$", self._download_v2),
            *self.annotation_routes(p),
            ("GET", rf"^{p}/(tasks|projects)/(\d+)/(dataset|annotations)$", self._legacy),
        ]
        for method, rx, fn in routes:
            m = re.match(rx, path)
            if m and method == self.command:
                fn(query, *m.groups())
                return
        self._detail(404, "Not found.")

    # -- endpoints ------------------------------------------------------------------------------------------------

    def _about(self, query: dict) -> None:
        st = self.server.state
        about = {"name": "Computer Vision Annotation Tool", "description": "fake CVAT", "version": st.version}
        if st.v >= (2, 30):
            about.update(logo_url="", subtitle="")
        self._send(200, about)

    def _login(self, query: dict) -> None:
        st = self.server.state
        try:
            creds = json.loads(self.body or b"{}")
        except ValueError:
            creds = {}
        user = creds.get("username", "")
        if not user or st.users.get(user) != creds.get("password"):
            self._send(400, {"non_field_errors": ["Unable to log in with provided credentials."]})
            return
        key, sid, csrf = secrets.token_hex(20), secrets.token_hex(16), secrets.token_hex(16)
        with st.lock:
            st.tokens[key] = user
            st.sessions[sid] = (user, csrf)
        self.send_response(200)
        data = json.dumps({"key": key}).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Set-Cookie", f"csrftoken={csrf}; Path=/; SameSite=Lax")
        self.send_header("Set-Cookie", f"sessionid={sid}; Path=/; HttpOnly; SameSite=Lax")
        self.end_headers()
        self.wfile.write(data)

    def _logout(self, query: dict) -> None:
        self._send(200, {"detail": "Successfully logged out."})

    def _read(self, query: dict, kind: str, obj_id: str) -> None:
        user = self._auth()
        if user is None:
            return
        obj = self._lookup(kind, int(obj_id), user)
        if obj is None:
            return
        self._send(200, self._record(kind, obj))

    def _task_list(self, query: dict) -> None:
        """``GET {P}/tasks?project_id=`` (paginated ``TaskRead`` records, as the project's ``tasks.url`` says)."""
        st = self.server.state
        user = self._auth()
        if user is None:
            return
        project_id = int(query.get("project_id", ["0"])[0])
        tasks = [t for t in st.tasks.values() if t.project_id == project_id and t.owner == user]
        self._send(200, self._page(query, [self._record("tasks", t) for t in tasks], f"{st.prefix}/tasks"))

    def _record(self, kind: str, obj: FakeTask | FakeProject) -> dict:
        st = self.server.state
        base = f"{st.base_url}{st.prefix}"
        common = {
            "url": f"{base}/{kind}/{obj.id}", "id": obj.id, "name": obj.name,
            "owner": {"id": 1, "username": obj.owner, "url": f"{base}/users/1", "first_name": "", "last_name": ""},
            "assignee": None, "bug_tracker": "", "created_date": "2024-01-01T00:00:00.000000Z",
            "updated_date": obj.updated_date, "status": "annotation", "dimension": "2d",
            "organization": None, "labels": {"url": f"{base}/labels?{kind[:-1]}_id={obj.id}"},
            "target_storage": None, "source_storage": None,
        }
        if kind == "tasks":
            assert isinstance(obj, FakeTask)
            common.update(
                project_id=obj.project_id, subset=obj.subset, mode="annotation", size=obj.n_images,
                overlap=0, segment_size=obj.n_images, image_quality=70, data=obj.id,
                jobs={"count": 1, "completed": 0, "validation": 0, "url": f"{base}/jobs?task_id={obj.id}"},
            )
            if st.v >= (2, 24):
                common["validation_mode"] = obj.validation_mode
            if st.v < (2, 3):
                common["labels"] = inline_labels(st, obj)
            if st.v < (2, 0):
                common["segments"] = legacy_segments(obj, base)
        else:
            assert isinstance(obj, FakeProject)
            common.update(
                tasks={"count": len(obj.task_ids), "url": f"{base}/tasks?project_id={obj.id}"},
                task_subsets=sorted({st.tasks[t].subset for t in obj.task_ids if st.tasks[t].subset}),
            )
        return common

    # jobs ---------------------------------------------------------------------------------------------------------

    def _rq_id(self, kind: str, obj_id: int, save_images: bool, user: str) -> str:
        st = self.server.state
        target, sub = kind[:-1], "dataset" if save_images else "annotations"
        if st.v >= (2, 38):
            return (f"action=export&target={target}&target_id={obj_id}&user_id={list(st.users).index(user) + 1}"
                    f"&format=COCO_1~0&subresource={sub}")
        return f"export:{target}-{obj_id}-{sub}-in-COCO_1@0-format-by-{user}"

    def _new_job(self, kind: str, obj_id: int, save_images: bool, user: str) -> Job:
        st = self.server.state
        obj = (st.tasks if kind == "tasks" else st.projects)[obj_id]
        fail = obj.fail_export if isinstance(obj, FakeTask) else None
        if isinstance(obj, FakeProject):
            fail = next((st.tasks[t].fail_export for t in obj.task_ids if st.tasks[t].fail_export), None)
        job = Job(self._rq_id(kind, obj_id, save_images, user), kind, obj_id, save_images, user, time.monotonic(),
                  st.export_delay, fail)
        st.jobs[(kind, obj_id, save_images, user)] = job
        return job

    def _job_data(self, job: Job) -> bytes:
        st = self.server.state
        if job.data is None:
            if job.kind == "tasks":
                task = st.tasks[job.obj_id]
                tasks, labels = [task], task.labels
            else:
                project = st.projects[job.obj_id]
                tasks, labels = [st.tasks[t] for t in project.task_ids], project.labels
            ids = label_ids(st, tasks[0]) if tasks else None
            job.data = build_export(tasks, labels=labels, include_images=job.save_images,
                                    nested_images=st.v >= (2, 16, 1), label_ids=ids)
        return job.data

    def _filename(self, job: Job) -> str:
        what = "dataset" if job.save_images else "annotations"
        return f"{job.kind[:-1]}_{job.obj_id}_{what}_2025_01_01_00_00_00_coco 1.0.zip"

    def _export_v2(self, query: dict, kind: str, obj_id: str) -> None:
        st = self.server.state
        if st.v < (2, 16):
            self._detail(404, "Not found.")
            return
        user = self._auth()
        if user is None or self._lookup(kind, int(obj_id), user) is None:
            return
        if query.get("format", [""])[0] != FORMAT:
            self._send(400, ["Unknown format specified for the request"])
            return
        save_images = query.get("save_images", ["false"])[0].lower() in ("true", "1")
        with st.lock:
            job = st.jobs.get((kind, int(obj_id), save_images, user))
            if job is not None and job.state() in ("queued", "started"):
                body = {"rq_id": job.rq_id} if st.v >= (2, 37) else "Export request is being processed"
                self._send(409, body)
                return
            job = self._new_job(kind, int(obj_id), save_images, user)
        self._send(202, {"rq_id": job.rq_id})

    def _request_status(self, query: dict, rq_id: str) -> None:
        st = self.server.state
        if st.v < (2, 16):
            self._detail(404, "Not found.")
            return
        user = self._auth()
        if user is None:
            return
        rq_id = unquote(rq_id)
        with st.lock:
            job = next((j for j in st.jobs.values() if j.rq_id == rq_id and j.user == user), None)
        if job is None:
            self._send(404, "There is no request with specified id", ctype="text/plain")
            return
        state = job.state()
        body: dict[str, Any] = {
            "status": state,
            "message": {"queued": "", "started": "Exporting", "finished": "",
                        "failed": f"{job.fail or ''}"}[state],
            "id": job.rq_id,
            "operation": {"type": "export:dataset", "target": job.kind[:-1],
                          "project_id": job.obj_id if job.kind == "projects" else None,
                          "task_id": job.obj_id if job.kind == "tasks" else None, "job_id": None,
                          "format": FORMAT},
            "progress": {"queued": 0.0, "started": 0.5}.get(state, 1.0),
            "created_date": "2025-01-01T00:00:00.000000Z",
            "started_date": None, "finished_date": None, "expiry_date": None,
            "owner": {"id": 1, "username": job.user},
        }
        if state == "finished":
            base = f"{st.base_url}/api/{job.kind}/{job.obj_id}"
            if st.v >= (2, 32):
                body["result_url"] = f"{base}/dataset/download?rq_id={quote(job.rq_id, safe='')}"
            else:
                images = "True" if job.save_images else "False"
                body["result_url"] = (f"{base}/{'dataset' if job.save_images else 'annotations'}"
                                      f"?format=COCO+1.0&save_images={images}&action=download")
        self._send(200, body)

    def _download_v2(self, query: dict, kind: str, obj_id: str) -> None:
        st = self.server.state
        if st.v < (2, 32):
            self._detail(404, "Not found.")
            return
        user = self._auth()
        if user is None:
            return
        rq_id = query.get("rq_id", [""])[0]
        if not rq_id:
            self._send(400, ["Missing request id in the query parameters"])
            return
        with st.lock:
            job = next((j for j in st.jobs.values() if j.rq_id == rq_id and j.user == user), None)
        if job is None:
            self._send(400, "Unknown export request id", ctype="text/plain")
            return
        if job.state() != "finished":
            self._send(400, "The export process is not finished", ctype="text/plain")
            return
        self._send_file(self._job_data(job), self._filename(job))

    def _legacy(self, query: dict, kind: str, obj_id: str, resource: str) -> None:
        st = self.server.state
        if st.v >= (2, 32):
            self._send(410, "This endpoint is no longer supported. To initiate the export process, use "
                            f"POST /api/{kind}/id/dataset/export?save_images=True", ctype="text/plain")
            return
        download = query.get("action", [""])[0] == "download"
        has_format = "format" in query
        # CsrfWorkaroundMixin (>= 2.14.3): no session auth on export-starting GETs.
        user = self._auth(allow_session=not (st.v >= (2, 14, 3) and has_format and not download))
        if user is None or self._lookup(kind, int(obj_id), user) is None:
            return
        if query.get("format", [""])[0] != FORMAT:
            self._send(400, ["Unknown format specified for the request"])
            return
        save_images = resource == "dataset"
        key = (kind, int(obj_id), save_images, user)
        with st.lock:
            job = st.jobs.get(key)
            if job is None:
                job = self._new_job(kind, int(obj_id), save_images, user)
                self._send(202, {"rq_id": job.rq_id} if st.v >= (2, 16) else None)
                return
            state = job.state()
            if state == "failed":
                del st.jobs[key]
                self._send(500, json.dumps(job.fail))
                return
            if state != "finished":
                if download and st.v >= (2, 14, 3):
                    msg = "Export has not finished" if st.v < (2, 17) else "Dataset export has not been finished yet"
                    self._send(400, msg, ctype="text/plain")
                    return
                self._send(202, {"rq_id": job.rq_id} if st.v >= (2, 17) else None)
                return
            if not download:
                self._send(201)
                return
            del st.jobs[key]  # served once: the next GET starts a new export
        self._send_file(self._job_data(job), self._filename(job))


class CvatServer(LoopbackServer):
    """Context manager running a fake CVAT server on a free loopback port."""

    def __init__(self, state: CvatState | None = None) -> None:
        self.state = state or CvatState()
        super().__init__(_Handler, self.state)
        self.state.base_url = self.url
