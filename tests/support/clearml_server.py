"""A loopback stand-in for a ClearML server (API + files) that speaks what ``clearml.Dataset`` needs.

ClearML's offline mode cannot finalize, look up or download datasets (``datasets/dataset.py`` raises
"Cannot get dataset … in offline mode"), so the Dataset tests talk to this instead, through the real SDK.

What it implements, from the SDK's side of the wire (``backend_api/session/session.py``, ``response.py``):

- every API call is ``POST|GET /<service>.<action>`` with a JSON body; answers are ``{"meta": {id, trx,
  endpoint{name, requested_version, actual_version}, result_code, result_subcode, result_msg}, "data": …}``;
- ``auth.login`` returns a JWT whose claims carry ``api_version``/``server_version`` (the SDK reads them
  unverified to pick its API level; Datasets need 2.13+);
- projects, tasks (create/get_all/edit/update/status changes/artifacts/hyper-parameters/configuration) kept in
  memory with the filters ``Dataset.get`` uses (id, name, project, system_tags, status, type);
- events and logs are accepted and kept; the files server stores uploads (multipart POST or PUT) and serves
  them back by path.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from support.loopback import Handler, LoopbackServer

API_VERSION = "2.23"


@dataclass
class ClearMLState:
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    base_url: str = ""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def _matches(value: Any, wanted: Any) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, list):
        if not wanted:
            return True
        values = value if isinstance(value, list) else [value]
        plus = [w for w in wanted if not str(w).startswith("-")]
        minus = [w[1:] for w in wanted if str(w).startswith("-") and w != "-"]
        return all(m not in values for m in minus) and (not plus or any(p in values for p in plus))
    return value == wanted


class _Handler(Handler):
    def _reply(self, status: int, data: Any, endpoint: str, msg: str = "OK") -> None:
        body = json.dumps({"meta": {"id": uuid.uuid4().hex, "trx": uuid.uuid4().hex,
                                    "endpoint": {"name": endpoint, "requested_version": API_VERSION,
                                                 "actual_version": API_VERSION},
                                    "result_code": status, "result_subcode": 0, "result_msg": msg,
                                    "error_stack": ""}, "data": data}).encode()
        self.send_body(status, body, "application/json")

    def _raw(self, status: int, data: bytes, ctype: str = "application/octet-stream") -> None:
        self.send_body(status, data, ctype)

    def _route(self) -> None:
        st = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = unquote(urlsplit(self.path).path)
        name = path.strip("/").split("/")[-1]
        if re.fullmatch(r"/(v[\d.]+/)?[a-z_]+\.[a-z_]+", path):  # API calls may carry a /v2.x/ prefix
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                payload = {}
            with st.lock:
                st.calls.append(name)
                try:
                    data = self._api(name, payload if isinstance(payload, dict) else {"requests": payload})
                except KeyError as exc:
                    self._reply(400, {}, name, f"Invalid task id: {exc}")
                    return
            self._reply(200, data, name)
            return
        self._files(path, body)

    # -- files server ---------------------------------------------------------------------------------------

    def _files(self, path: str, body: bytes) -> None:
        st = self.server.state
        if self.command in ("GET", "HEAD"):
            data = st.files.get(path)
            self._raw(200, data) if data is not None else self._raw(404, b"not found", "text/plain")
            return
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            boundary = ctype.split("boundary=", 1)[1].encode()
            for part in body.split(b"--" + boundary):
                head, _, content = part.partition(b"\r\n\r\n")
                match = re.search(rb'name="([^"]+)"', head)
                if match and content:
                    key = match.group(1).decode()
                    st.files["/" + key.lstrip("/") if not key.startswith("/") else key] = content[:-2]
        else:
            st.files[path] = body
        self._raw(200, b"{}", "application/json")

    # -- API ------------------------------------------------------------------------------------------------

    def _api(self, name: str, p: dict[str, Any]) -> Any:
        st = self.server.state
        service, action = name.split(".")
        if name == "auth.login":
            import jwt

            claims = {"exp": int(time.time()) + 86400, "api_version": API_VERSION, "server_version": "1.16.0",
                      "identity": {"company": "c1", "user": "u1", "role": "admin", "user_name": "tester",
                                   "company_name": "test"}}
            return {"token": jwt.encode(claims, "fake-clearml-server-signing-key-32b!", algorithm="HS256")}
        if service == "models":
            return self._models(action, p)
        if service in ("events",) or name in ("users.get_current_user", "server.info", "debug.ping",
                                              "queues.get_all"):
            if service == "events":
                st.events.append({"endpoint": name, "body": p})
            if name == "users.get_current_user":
                return {"user": {"id": "u1", "name": "tester", "company": {"id": "c1"}},
                        "getting_started": {}, "settings": {}}
            if name == "queues.get_all":
                return {"queues": []}
            return {"added": len(p.get("requests", [])) if isinstance(p.get("requests"), list) else 0,
                    "errors": 0, "events": [], "total": 0, "returned": 0, "metrics": []}
        if service == "projects":
            return self._projects(action, p)
        if service == "tasks":
            return self._tasks(action, p)
        return {}

    def _projects(self, action: str, p: dict[str, Any]) -> Any:
        st = self.server.state
        if action == "create":
            pid = uuid.uuid4().hex
            st.projects[pid] = {"id": pid, "name": p["name"], "system_tags": p.get("system_tags", []),
                                "tags": p.get("tags", []), "created": _now(), "basename": p["name"].split("/")[-1]}
            return {"id": pid}
        if action in ("get_all", "get_all_ex"):
            out = list(st.projects.values())
            if p.get("id"):
                ids = p["id"] if isinstance(p["id"], list) else [p["id"]]
                out = [x for x in out if x["id"] in ids]
            if p.get("name"):
                rx = re.compile(p["name"])
                out = [x for x in out if rx.search(x["name"])]
            return {"projects": out}
        if action == "get_by_id":
            return {"project": st.projects[p["project"]]}
        return {"updated": 1}

    def _models(self, action: str, p: dict[str, Any]) -> Any:
        st = self.server.state
        if action in ("create", "update_for_task") and not p.get("model"):
            mid = uuid.uuid4().hex
            st.models[mid] = {"id": mid, "created": _now(), "ready": False, "system_tags": [], "tags": [],
                              "user": "u1", "company": "c1", "metadata": {}, "labels": {}, "design": {},
                              **{k: v for k, v in p.items() if k not in ("override_model_id",)}}
            if p.get("task"):
                st.models[mid]["task"] = p["task"]
            return {"id": mid, "created": True, "updated": 0, "fields": {}}
        if action in ("get_all", "get_all_ex"):
            ids = p.get("id") or []
            ids = ids if isinstance(ids, list) else [ids]
            return {"models": [m for m in st.models.values() if not ids or m["id"] in ids]}
        model = st.models[p["model"]]
        if action == "get_by_id":
            return {"model": model}
        if action == "add_or_update_metadata":
            for item in p.get("metadata", []):
                model["metadata"][item["key"]] = item
            return {"updated": 1}
        if action == "set_ready":
            model["ready"] = True
            return {"updated": 1, "published_task": {}}
        model.update({k: v for k, v in p.items() if k != "model"})
        return {"updated": 1, "fields": {}}

    def _tasks(self, action: str, p: dict[str, Any]) -> Any:
        st = self.server.state
        if action == "create":
            tid = uuid.uuid4().hex
            task = {"id": tid, "status": "created", "created": _now(), "last_update": _now(),
                    "system_tags": [], "tags": [], "execution": {"artifacts": []}, "hyperparams": {},
                    "configuration": {}, "runtime": {}, "user": "u1", "company": "c1", "comment": "",
                    "models": {"input": [], "output": []}, "last_iteration": 0, "status_changed": _now(),
                    "output": {"destination": None}, "script": {}, "container": {}, "last_metrics": {}}
            _deep_merge(task, json.loads(json.dumps(p)))
            st.tasks[tid] = task
            return {"id": tid}
        if action in ("get_all", "get_all_ex"):
            return {"tasks": self._select(p)}
        if action == "get_by_id":
            return {"task": st.tasks[p["task"]]}
        task = st.tasks[p["task"]] if "task" in p else None
        if task is None:
            return {"updated": 0}
        if action in ("edit", "update"):
            fields = {k: v for k, v in p.items() if k not in ("task", "force")}
            for key, value in fields.items():
                task[key] = value  # edit/update replace top-level fields
            task["last_update"] = _now()
            return {"updated": 1, "fields": fields}
        if action == "add_or_update_artifacts":
            current = {a["key"]: a for a in task["execution"].get("artifacts", [])}
            for art in p.get("artifacts", []):
                current[art["key"]] = art
            task["execution"]["artifacts"] = list(current.values())
            return {"updated": len(p.get("artifacts", []))}
        if action == "delete_artifacts":
            keys = {a["key"] for a in p.get("artifacts", [])}
            task["execution"]["artifacts"] = [a for a in task["execution"]["artifacts"] if a["key"] not in keys]
            return {"deleted": len(keys)}
        if action == "add_or_update_model":
            kind = p.get("type", "output")
            models = [m for m in task["models"].get(kind, []) if m.get("name") != p.get("name")]
            task["models"][kind] = [*models, {"name": p.get("name"), "model": p.get("model")}]
            return {"updated": 1}
        if action == "edit_hyper_params":
            for param in p.get("hyperparams", []):
                task["hyperparams"].setdefault(param["section"], {})[param["name"]] = param
            return {"updated": 1}
        if action == "get_hyper_params":
            return {"params": [{"task": task["id"], "hyperparams": [v for s in task["hyperparams"].values()
                                                                    for v in s.values()]}]}
        if action == "edit_configuration":
            for item in p.get("configuration", []):
                task["configuration"][item["name"]] = item
            return {"updated": 1}
        if action in ("get_configurations", "get_configuration_names"):
            return {"configurations": [{"task": task["id"], "configuration": list(task["configuration"].values())}]}
        status = {"started": "in_progress", "stopped": "stopped", "completed": "completed", "close": "closed",
                  "publish": "published", "failed": "failed", "reset": "created", "mark_completed": "completed",
                  "enqueue": "queued", "dequeue": "created"}.get(action)
        if status:
            task["status"] = status
            task["status_changed"] = _now()
            if status == "published":
                task["system_tags"] = [*task.get("system_tags", []), "published"]
            return {"updated": 1, "fields": {"status": status}}
        return {"updated": 1}

    def _select(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        out = list(self.server.state.tasks.values())
        if p.get("id"):
            ids = p["id"] if isinstance(p["id"], list) else [p["id"]]
            out = [t for t in out if t["id"] in ids]
        if p.get("name"):
            rx = re.compile(p["name"])
            out = [t for t in out if rx.search(t.get("name", ""))]
        for key in ("project", "status", "type"):
            if p.get(key):
                out = [t for t in out if _matches(t.get(key), p[key])]
        for key in ("system_tags", "tags"):
            if p.get(key):
                out = [t for t in out if _matches(t.get(key, []), p[key])]
        order = p.get("order_by") or []
        for key in reversed(order if isinstance(order, list) else [order]):
            rev = key.startswith("-")
            out.sort(key=lambda t: str(t.get(key.lstrip("-"), "")), reverse=rev)
        if p.get("page_size") is not None:
            page = int(p.get("page") or 0)
            out = out[page * p["page_size"]:(page + 1) * p["page_size"]]
        return out


class ClearMLServer(LoopbackServer):
    """Context manager: the fake ClearML API and files server on one loopback port."""

    def __init__(self) -> None:
        self.state = ClearMLState()
        super().__init__(_Handler, self.state)
        self.state.base_url = self.url
