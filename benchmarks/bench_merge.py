"""Benchmark the merge on large CVAT exports, side by side with Datumaro's union merge.

Input: 3 CVAT 'COCO 1.0' exports (Datumaro's JSON layout), each 20,000 images and 100,000 annotations (boxes
with a polygon segmentation and CVAT ``attributes``; 5 of 8 class names per export, in different orders),
annotations only. Prints, for 1x, 2x and 4x that input: wall time of the merge (read, check, split, write,
manifest; interpreter start and imports excluded), peak RSS of the merging process (ru_maxrss, which
includes the ~20 MB interpreter) and, at 1x, the Python heap peak (tracemalloc, in a separate run because
tracing slows it down). Datumaro (imported, union-merged and, separately timed, exported) runs in its own
virtual environment, installed from PyPI when missing; it is skipped with a note when that fails.

The merge reads well-formed files through msgspec when it is installed (``rfdetr_trainer.coco.fastjson``);
``--stdlib`` also times the stdlib-only path at the first scale, in the same run, for comparison.

Usage:
    python benchmarks/bench_merge.py [--scales 1 2 4] [--repeat 2] [--stdlib]
                                     [--datumaro-python PATH | --no-datumaro]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLASSES = ["car", "truck", "bus", "person", "bicycle", "dog", "traffic sign", "traffic light"]
IMAGES, ANNOTATIONS, EXPORTS = 20_000, 100_000, 3
DM_VENV = Path("/tmp/dm-venv")
DM_SPEC = "datumaro==1.13.*"


# ---- input ---------------------------------------------------------------------------------------------------


def write_export(root: Path, seed: int, scale: int) -> int:
    """Write one CVAT-style export (annotations only); return the JSON size in bytes."""
    rnd = random.Random(seed)
    names = rnd.sample(CLASSES, 5)
    n_img, n_ann = IMAGES * scale, ANNOTATIONS * scale
    path = root / "annotations" / "instances_default.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)  # empty: Datumaro's COCO importer insists on the folder
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"licenses":[{"name":"","id":0,"url":""}],"info":{"contributor":"","date_created":"",'
                 '"description":"","url":"","version":"","year":""},"categories":')
        fh.write(dumps([{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(names)]))
        fh.write(',"images":')
        fh.write(dumps([{"id": i + 1, "width": 1920, "height": 1080, "file_name": f"frame_{i:06d}.PNG",
                         "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0}
                        for i in range(n_img)]))
        fh.write(',"annotations":[')
        batch = []
        for a in range(n_ann):
            x, y = round(rnd.uniform(0, 1800), 2), round(rnd.uniform(0, 1000), 2)
            w, h = round(rnd.uniform(2, 110), 2), round(rnd.uniform(2, 75), 2)
            x1, y1 = round(x + w, 2), round(y + h, 2)
            batch.append({
                "id": a + 1, "image_id": rnd.randint(1, n_img), "category_id": rnd.randint(1, 5),
                "segmentation": [[x, y, x1, y, x1, y1, x, y1]], "area": round(w * h, 2),
                "bbox": [x, y, w, h], "iscrowd": 0,
                "attributes": {"occluded": rnd.random() < 0.2, "rotation": 0.0,
                               "color": rnd.choice(["red", "blue", "white"])},
            })
            if len(batch) == 10_000 or a == n_ann - 1:
                fh.write(("," if a >= len(batch) else "") + dumps(batch)[1:-1])
                batch = []
        fh.write("]}")
    return path.stat().st_size


def make_inputs(work: Path, scale: int) -> tuple[list[Path], int]:
    roots, size = [], 0
    for k in range(EXPORTS):
        root = work / f"x{scale}" / f"task{k}"
        if not (root / "annotations" / "instances_default.json").is_file() or not (root / "images").is_dir():
            write_export(root, seed=1000 + k, scale=scale)
        size += (root / "annotations" / "instances_default.json").stat().st_size
        roots.append(root)
    return roots, size


# ---- children (each measurement in a fresh process, so peaks do not mix) ----------------------------------------

OURS = r"""
import json, resource, sys, time, tracemalloc
from pathlib import Path
from rfdetr_trainer.coco import fastjson
from rfdetr_trainer.coco.merge import MergeOptions, merge_datasets
from rfdetr_trainer.coco.source import SourceRef
args = json.loads(sys.argv[1])
fastjson.enabled = fastjson.enabled and not args.get("stdlib")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if args["trace"]:
    tracemalloc.start()
t = time.perf_counter()
result = merge_datasets([SourceRef(Path(p), Path(p).name) for p in args["inputs"]], Path(args["out"]),
                        MergeOptions(copy_images=False, split_mode="keep"))
seconds = time.perf_counter() - t
heap = tracemalloc.get_traced_memory()[1] if args["trace"] else None
print(json.dumps({"reader": "msgspec" if fastjson.enabled else "stdlib json",
                  "seconds": seconds, "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "baseline_rss": base * 1024, "heap_peak": heap, "annotations": result.counts["annotations"],
                  "images": result.counts["images"]}))
"""

DATUMARO = r"""
import json, resource, sys, time, logging
logging.disable(logging.WARNING)
from datumaro.components.dataset import Dataset
from datumaro.components.hl_ops import HLOps
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
sets = [Dataset.import_from(p, "coco_instances") for p in args["inputs"]]
for s in sets:
    len(s)  # make the lazy import happen here
t1 = time.perf_counter()
merged = HLOps.merge(*sets, merge_policy="union")
n = sum(len(item.annotations) for item in merged)
t2 = time.perf_counter()
merged.export(args["out"], "coco_instances", save_media=False)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "merge": t2 - t1, "export": t3 - t2, "annotations": n,
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def run_child(python: str, code: str, args: dict, env: dict | None = None, timeout: float = 1800) -> dict:
    proc = subprocess.run([python, "-c", code, json.dumps(args)], capture_output=True, text=True, env=env,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_datumaro(python: str | None) -> str | None:
    """The Datumaro venv's python, installing it from PyPI into /tmp/dm-venv when missing; None if impossible."""
    candidate = python or str(DM_VENV / "bin" / "python")
    check = [candidate, "-c", "import datumaro"]
    if Path(candidate).exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return candidate
    if python:
        return None
    print(f"installing {DM_SPEC} into {DM_VENV} (one time) ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(DM_VENV)], check=True, capture_output=True)
        subprocess.run([candidate, "-m", "pip", "install", "-q", DM_SPEC], check=True, capture_output=True,
                       timeout=1200)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"datumaro unavailable ({type(exc).__name__}); skipping the comparison", file=sys.stderr)
        return None
    return candidate if subprocess.run(check, capture_output=True).returncode == 0 else None


def mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=2, help="runs per scale; the fastest is reported")
    parser.add_argument("--datumaro-python", default=None)
    parser.add_argument("--no-datumaro", action="store_true")
    parser.add_argument("--stdlib", action="store_true", help="also time the stdlib-only reader at the first scale")
    parser.add_argument("--workdir", type=Path, default=None, help="keep generated inputs here between runs")
    opts = parser.parse_args()

    work = opts.workdir or Path(tempfile.mkdtemp(prefix="bench-merge-"))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    print(f"inputs: {EXPORTS} CVAT exports x ({IMAGES:,} images, {ANNOTATIONS:,} annotations) x scale; "
          f"annotations only; workdir {work}")
    try:
        rows = []
        for scale in opts.scales:
            t = time.perf_counter()
            inputs, size = make_inputs(work, scale)
            print(f"  generated {scale}x input: {mb(size)} JSON in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            best = None
            for _ in range(opts.repeat):
                out = work / f"out{scale}"
                r = run_child(sys.executable, OURS, {"inputs": [str(p) for p in inputs], "out": str(out),
                                                     "trace": False}, env)
                shutil.rmtree(out, ignore_errors=True)
                best = r if best is None or r["seconds"] < best["seconds"] else best
            rows.append((scale, size, best))
        print(f"\nrfdetr-trainer merge (annotations only, {rows[0][2]['reader']} reader):")
        print(f"  {'scale':>5} {'input JSON':>11} {'annotations':>12} {'seconds':>8} {'s/100k ann':>10} "
              f"{'vs linear':>9} {'peak RSS':>9} {'RSS/input':>9}")
        base_rate = rows[0][2]["seconds"] / rows[0][0]
        for scale, size, r in rows:
            print(f"  {scale:>4}x {mb(size):>11} {r['annotations']:>12,} {r['seconds']:>8.2f} "
                  f"{r['seconds'] / r['annotations'] * 1e5:>10.3f} {r['seconds'] / scale / base_rate:>9.2f} "
                  f"{mb(r['maxrss']):>9} {r['maxrss'] / size:>9.2f}")
        print(f"  (interpreter + imports before the merge: {mb(rows[0][2]['baseline_rss'])} of each peak RSS)")
        if opts.stdlib:
            scale, size, _ = rows[0]
            inputs, _ = make_inputs(work, scale)
            slow = min((run_child(sys.executable, OURS, {"inputs": [str(p) for p in inputs], "out": str(work / "outs"),
                                                         "trace": False, "stdlib": True}, env)
                        for _ in range(opts.repeat)), key=lambda r: r["seconds"])
            shutil.rmtree(work / "outs", ignore_errors=True)
            print(f"  stdlib-only reader at {scale}x: {slow['seconds']:.2f} s, peak RSS {mb(slow['maxrss'])} "
                  f"({slow['maxrss'] / size:.2f}x input)")

        inputs1, size1 = make_inputs(work, opts.scales[0])
        traced = run_child(sys.executable, OURS, {"inputs": [str(p) for p in inputs1], "out": str(work / "outt"),
                                                  "trace": True}, env)
        shutil.rmtree(work / "outt", ignore_errors=True)
        print(f"  tracemalloc heap peak at {opts.scales[0]}x: {mb(traced['heap_peak'])} "
              f"= {traced['heap_peak'] / size1:.2f}x the input JSON")

        ours = rows[0][2]["seconds"]
        if opts.no_datumaro:
            print("\ndatumaro: skipped (--no-datumaro)")
            return
        python = ensure_datumaro(opts.datumaro_python)
        if python is None:
            print("\ndatumaro: unavailable, comparison skipped")
            return
        try:
            d = run_child(python, DATUMARO, {"inputs": [str(p) for p in inputs1], "out": str(work / "outdm")})
        except (RuntimeError, subprocess.SubprocessError) as exc:
            print(f"\ndatumaro: failed ({exc}); comparison skipped")
            return
        finally:
            shutil.rmtree(work / "outdm", ignore_errors=True)
        dm = d["import"] + d["merge"]
        print(f"\ndatumaro 1.13 union merge at {opts.scales[0]}x (same input, same machine, same run):")
        print(f"  import {d['import']:.2f} s + merge {d['merge']:.2f} s = {dm:.2f} s "
              f"(+ export {d['export']:.2f} s), {d['annotations']:,} annotations, peak RSS {mb(d['maxrss'])}")
        print(f"  speed-up: {dm / ours:.1f}x vs datumaro import+merge; {(dm + d['export']) / ours:.1f}x vs "
              f"import+merge+export (ours {ours:.2f} s includes writing the output)")
    finally:
        if opts.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
