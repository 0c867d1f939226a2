"""Keep only reviewed work of a fetched CVAT task, and send its ground-truth frames to the test split.

A task export holds every frame. This step reads the task's jobs (``stage``, ``state``, frame ranges) and its
validation layout, then writes a *view* of the export beside it (``task-12.jobs/``; the export itself, which
is the cache, is never changed):

- frames of annotation jobs whose stage and state match the filters stay in their subset;
- frames of ground-truth jobs (and a ``gt_pool`` task's validation frames) go to ``instances_test.json``, so
  the test set is the expert-checked one; honeypot frames (copies of validation frames placed inside
  annotation jobs) are dropped, as training on them would leak test images;
- every other frame is skipped, and every skip is counted in the source's ``origin`` (so in the fetch summary
  and the dataset manifest).

A project export names its images per subset (duplicates mangled to ``name_1.jpg``), so its frames cannot be
mapped back to (task, frame) reliably: where job filters are set or a project task has ground truth, the
project is fetched task by task instead (:func:`split_projects`) and each task gets its view. Other projects
are left as exported.

Images are hard-linked into the view (copied where links are refused), so it costs no space.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.integrations.archive import remove_stale_siblings, replace_dir, temp_sibling
from rfdetr_trainer.integrations.cvat.tasks import TaskApi
from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)

#: Test subset name for ground-truth frames (maps to the ``test`` split in merge's keep mode).
GT_SUBSET = "test"
STATES = {"new": "new", "in-progress": "in progress", "in progress": "in progress", "completed": "completed",
          "rejected": "rejected"}


def wants_job_view(cfg: Any) -> bool:
    """Whether a fetch has to look at jobs at all."""
    return bool(cfg.job_stages or cfg.job_states or cfg.gt_to_test)


def frame_plan(api: TaskApi, task_id: int, cfg: Any) -> dict[str, Any]:
    """Which frames to keep, move to test or skip, and why (counts and the job ids behind them)."""
    stages = set(cfg.job_stages)
    states = {STATES.get(s, s) for s in cfg.job_states}
    jobs = api.jobs(task_id)
    layout = api.validation_layout(task_id) if cfg.gt_to_test else None
    gt: set[int] = set()
    honeypots: set[int] = set()
    gt_jobs = []
    if cfg.gt_to_test:
        for job in jobs:
            if job.type == "ground_truth":
                gt.update(job.frames)
                gt_jobs.append(job.id)
        if layout is not None:
            gt.update(layout.validation_frames)
            honeypots.update(layout.honeypot_frames)
    keep: set[int] = set()
    skipped_jobs = []
    for job in jobs:
        if job.type == "ground_truth":
            continue
        if (stages and job.stage not in stages) or (states and job.state not in states):
            skipped_jobs.append({"id": job.id, "stage": job.stage, "state": job.state, "frames": len(job.frames)})
            continue
        keep.update(job.frames)
    keep -= gt | honeypots
    return {"keep": keep, "gt": gt - honeypots, "honeypots": honeypots, "skipped_jobs": skipped_jobs,
            "gt_jobs": gt_jobs,
            "filters": {"stage": sorted(stages), "state": sorted(states), "gt_to_test": bool(cfg.gt_to_test)}}


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _find_image(folder: Path, subset: str, file_name: str) -> Path | None:
    for base in (folder / "images" / subset, folder / "images"):
        candidate = base / file_name
        if candidate.is_file():
            return candidate
    return None


def job_view(api: TaskApi, ref: SourceRef, task_id: int, cfg: Any) -> SourceRef:
    """The filtered view of a fetched task export, as a new :class:`SourceRef` (origin gains ``jobs`` counts)."""
    plan = frame_plan(api, task_id, cfg)
    if not plan["gt"] and not plan["honeypots"] and not plan["skipped_jobs"]:
        return SourceRef(ref.path, ref.name, {**ref.origin, "jobs": {**_counts(plan, None), "view": False}})
    names = {f.name: f.frame for f in api.frames(task_id)}
    expert = _ground_truth_shapes(api, task_id, plan["gt_jobs"])
    folder = Path(ref.path)
    view = folder.with_name(folder.name + ".jobs")
    remove_stale_siblings(view)
    tmp = temp_sibling(view, "dir")
    tmp.mkdir(parents=True)
    counts = {"total": 0, "kept": 0, "gt": 0, "honeypot": 0, "skipped": 0, "gt_annotations": 0}
    gt_doc: dict[str, Any] | None = None
    try:
        for ann_file in sorted((folder / "annotations").glob("instances_*.json")):
            subset = ann_file.stem[len("instances_"):]
            doc = json.loads(ann_file.read_text(encoding="utf-8"))
            keep_doc = {**doc, "images": [], "annotations": []}
            gt_doc = gt_doc or {**doc, "images": [], "annotations": []}
            where: dict[int, dict[str, Any] | None] = {}
            for image in doc.get("images", []):
                counts["total"] += 1
                frame = names.get(image["file_name"])
                target = keep_doc if frame in plan["keep"] else gt_doc if frame in plan["gt"] else None
                where[image["id"]] = target
                if target is None:
                    counts["honeypot" if frame in plan["honeypots"] else "skipped"] += 1
                    continue
                counts["kept" if target is keep_doc else "gt"] += 1
                target["images"].append(image)
                src = _find_image(folder, subset, image["file_name"])
                if src is not None:
                    test = target is gt_doc or subset.lower() == GT_SUBSET
                    dest_subset = GT_SUBSET if test else subset
                    _link(src, tmp / "images" / dest_subset / image["file_name"])
            for ann in doc.get("annotations", []):
                target = where.get(ann["image_id"])
                # A ground-truth frame carries the experts' shapes (its job's), not the annotators' copy.
                if target is not None and not (expert is not None and target is gt_doc):
                    target["annotations"].append(ann)
            if expert is not None:
                frame_of = {i["id"]: names.get(i["file_name"]) for i in doc.get("images", [])}
                for image in doc.get("images", []):
                    if where.get(image["id"]) is gt_doc:
                        for ann in coco_from_shapes(expert[1].get(frame_of[image["id"]], []), image["id"],
                                                    expert[0], doc.get("categories", [])):
                            gt_doc["annotations"].append(ann)
                            counts["gt_annotations"] += 1
            out = tmp / "annotations" / ann_file.name
            out.parent.mkdir(parents=True, exist_ok=True)
            if subset.lower() != GT_SUBSET:
                out.write_text(json.dumps(keep_doc), encoding="utf-8")
            else:  # a task whose own subset is already "test": ground truth joins it
                gt_doc["images"] = keep_doc["images"] + gt_doc["images"]
                gt_doc["annotations"] = keep_doc["annotations"] + gt_doc["annotations"]
        if gt_doc is not None and gt_doc["images"]:
            for n, ann in enumerate(gt_doc["annotations"], start=1):
                ann["id"] = n
            (tmp / "annotations").mkdir(parents=True, exist_ok=True)
            (tmp / "annotations" / f"instances_{GT_SUBSET}.json").write_text(json.dumps(gt_doc), encoding="utf-8")
        replace_dir(tmp, view)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    origin = {**ref.origin, "jobs": {**_counts(plan, counts), "view": True}}
    return SourceRef(view, ref.name, origin)


def _counts(plan: dict[str, Any], counts: dict[str, int] | None) -> dict[str, Any]:
    """What the view kept and skipped, image by image (kept + to test + skipped + honeypots = total)."""
    out: dict[str, Any] = {"filters": plan["filters"], "jobs_skipped": plan["skipped_jobs"]}
    if counts is not None:
        out.update(frames_total=counts["total"], frames_kept=counts["kept"],
                   frames_ground_truth_to_test=counts["gt"], frames_skipped_by_job_filter=counts["skipped"],
                   frames_skipped_honeypot=counts["honeypot"],
                   ground_truth_annotations=counts["gt_annotations"] if plan["gt_jobs"] else None)
    return out


def apply_job_views(conn: Any, cfg: Any, refs: list[SourceRef]) -> list[SourceRef]:
    """Replace each fetched task by its job view where job filters or ground truth call for one.

    A task whose record says ``validation_mode: null`` (2.24+) has no ground truth: without stage or state
    filters it is left alone and no jobs are read. Projects left whole by :func:`split_projects` pass through.
    """
    if not wants_job_view(cfg):
        return refs
    filters = bool(cfg.job_stages or cfg.job_states)
    todo = [r for r in refs if "task_id" in r.origin and (filters or r.origin.get("validation_mode", "?") is not None)]
    if not todo:
        return refs
    from rfdetr_trainer.integrations.cvat.tasks import make_task_api

    api = make_task_api(conn, cfg.downloader)
    try:
        views = {id(r): job_view(api, r, int(r.origin["task_id"]), cfg) for r in todo}
    finally:
        api.close()
    return [views.get(id(r), r) for r in refs]


def split_projects(conn: Any, cfg: Any, refs: list[SourceRef],
                   fetch_task: Callable[[int], SourceRef]) -> list[SourceRef]:
    """Replace each fetched project by its tasks (``fetch_task(id)``) where job filters or ground truth apply.

    Tasks outside ``cfg.subsets`` (when given) are left out, as the project export leaves them out, and tasks
    also fetched on their own are not repeated. A project with no filters to apply and no ground truth in
    any task stays as exported (its tasks' jobs are read only where the server does not say
    ``validation_mode: null``).
    """
    projects = [r for r in refs if "project_id" in r.origin]
    if not projects or not wants_job_view(cfg):
        return refs
    filters = bool(cfg.job_stages or cfg.job_states)
    wanted = {s.lower() for s in cfg.subsets}
    seen = {int(r.origin["task_id"]) for r in refs if "task_id" in r.origin}
    from rfdetr_trainer.integrations.cvat.tasks import make_task_api

    api = make_task_api(conn, cfg.downloader)
    split: dict[int, list[int]] = {}
    try:
        for ref in projects:
            tasks = [t for t in api.project_tasks(int(ref.origin["project_id"]))
                     if not wanted or (t["subset"] or "default").lower() in wanted]
            if filters or any(t.get("validation_mode", "?") is not None and _has_ground_truth(api, t["id"], cfg)
                              for t in tasks):
                split[id(ref)] = [t["id"] for t in tasks]
    finally:
        api.close()
    out: list[SourceRef] = []
    for ref in refs:
        if id(ref) not in split:
            out.append(ref)
            continue
        project_id = int(ref.origin["project_id"])
        log.info("CVAT project %d: job filters or ground truth apply, fetching its %d task(s) one by one "
                 "(a project export cannot be mapped back to task frames)", project_id, len(split[id(ref)]))
        for task_id in split[id(ref)]:
            if task_id in seen:
                continue
            seen.add(task_id)
            task_ref = fetch_task(task_id)
            out.append(SourceRef(task_ref.path, task_ref.name, {**task_ref.origin, "from_project": project_id}))
    return out


def _has_ground_truth(api: TaskApi, task_id: int, cfg: Any) -> bool:
    plan = frame_plan(api, task_id, cfg)
    return bool(plan["gt"] or plan["honeypots"])


def _ground_truth_shapes(api: TaskApi, task_id: int, job_ids: list[int]):  # type: ignore[no-untyped-def]
    """``(label names by id, shapes by frame)`` of the task's ground-truth jobs, or None when it has none."""
    if not job_ids:
        return None
    labels = {lab.id: lab.name for lab in api.labels(task_id)}
    by_frame: dict[int, list[dict[str, Any]]] = {}
    for job_id in job_ids:
        for shape in api.job_annotations(task_id, job_id).get("shapes", []):
            by_frame.setdefault(int(shape["frame"]), []).append(shape)
    return labels, by_frame


def coco_from_shapes(shapes: list[dict[str, Any]], image_id: int, labels: dict[int, str],
                     categories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CVAT rectangles and polygons as the COCO exporter writes them (protocol §5); other types are dropped."""
    cat_of = {c["name"]: c["id"] for c in categories}
    out = []
    for shape in shapes:
        kind, pts = shape.get("type"), [float(v) for v in shape.get("points", [])]
        cat = cat_of.get(labels.get(shape.get("label_id"), ""))
        if cat is None or kind not in ("rectangle", "polygon") or len(pts) < 4:
            continue
        xs, ys = pts[0::2], pts[1::2]
        x0, y0 = min(xs), min(ys)
        w, h = max(xs) - x0, max(ys) - y0
        if kind == "rectangle":
            seg: list[Any] = []
            area = w * h
        else:
            seg = [pts]
            area = abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))) / 2
        attrs: dict[str, Any] = {"occluded": bool(shape.get("occluded"))}
        if kind == "rectangle":
            attrs["rotation"] = float(shape.get("rotation") or 0.0)
        out.append({"id": 0, "image_id": image_id, "category_id": cat, "segmentation": seg,
                    "area": round(area, 2), "bbox": [round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)],
                    "iscrowd": 0, "attributes": attrs})
    return out
