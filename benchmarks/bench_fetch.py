"""Fetch throughput: S3 (moto server) and CVAT (the test server), ours against the obvious alternatives.

S3: 2,000 distinct ~60 KB JPEGs in train/valid/test with their COCO files, served by moto's server in its
own process; each round alternates the two sides, each with a fresh folder:
  - aws s3 sync (the one on PATH, else installed into /tmp/aws-venv; skipped if that fails), then a no-op re-run
  - our fetch stage (S3 transfer + the image checks it runs before training), then a no-op re-run
CVAT: several tasks with a simulated export delay on the loopback test server.
  - fetch_cvat with concurrency 1 (sequential) vs concurrency N, then a cached re-fetch

Usage: python benchmarks/bench_fetch.py [--objects 2000] [--rounds 3] [--tasks 6] [--export-delay 1.0] [--skip cvat]
Prints medians and the ratios against the goals (cold <= 1.0x aws s3 sync; no-op < 1 s and <= aws).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "sources"))
AWS_VENV = Path("/tmp/aws-venv")
CREDS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto() -> tuple[subprocess.Popen, str]:
    """moto's ThreadedMotoServer in a child process, so neither side shares a GIL with the server."""
    port = _free_port()
    code = ("import time; from moto.server import ThreadedMotoServer; "
            f"ThreadedMotoServer(ip_address='127.0.0.1', port={port}, verbose=False).start(); time.sleep(10**6)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}"


def _aws_cli() -> Path | None:
    """The ``aws`` command: on PATH, or installed once into /tmp/aws-venv (for this benchmark only)."""
    found = shutil.which("aws")
    if found:
        return Path(found)
    aws = AWS_VENV / "bin" / "aws"
    if aws.exists():
        return aws
    print("installing awscli into /tmp/aws-venv ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(AWS_VENV)], check=True, capture_output=True)
        subprocess.run([str(AWS_VENV / "bin" / "pip"), "install", "-q", "awscli"], check=True, capture_output=True,
                       timeout=300)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"awscli unavailable ({exc}); skipping aws s3 sync", file=sys.stderr)
        return None
    return aws if aws.exists() else None


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _photos(n_objects: int) -> Path:
    """``n_objects`` distinct ~60 KB 640x480 JPEGs in train/valid/test with COCO files (made once, reused)."""
    from rfdetr_trainer.synthetic import make_photo_dataset

    folder = Path(tempfile.gettempdir()) / f"bench-fetch-photos-{n_objects}"
    if not (folder / "test" / "_annotations.coco.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"writing {n_objects} JPEGs to {folder} ...", file=sys.stderr)
        make_photo_dataset(folder.with_suffix(".tmp"), num_images=n_objects, width=640, height=480, grain=6,
                           quality=85, seed=11, splits={"train": 0.8, "valid": 0.1, "test": 0.1})
        folder.with_suffix(".tmp").rename(folder)
    return folder


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bench_s3(n_objects: int, rounds: int) -> None:
    """Cold fetch and no-op re-fetch, ours (fetch stage: transfer + image validation) vs ``aws s3 sync``."""
    import boto3

    from rfdetr_trainer.schemas.data import DataConfig, MinioConfig
    from rfdetr_trainer.services.fetch import fetch

    os.environ.update(CREDS)
    photos = _photos(n_objects)
    files = sorted(p for p in photos.rglob("*") if p.is_file())
    proc, endpoint = _start_moto()
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        bucket, prefix = "bench", "ds/"
        client.create_bucket(Bucket=bucket)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda f: client.put_object(Bucket=bucket, Key=prefix + f.relative_to(photos).as_posix(),
                                                      Body=f.read_bytes()), files))
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"S3: {len(files)} objects ({n_objects} distinct JPEGs in train/valid/test + 3 COCO files), "
              f"{total_mb:.1f} MB, moto server at {endpoint}, {rounds} alternating rounds")
        work = Path(tempfile.mkdtemp(prefix="bench-fetch-"))
        aws = _aws_cli()
        cfg = MinioConfig(endpoint=endpoint, access_key="bench", secret_key="bench", secure=False, bucket=bucket,
                          prefixes=[prefix])
        times: dict[str, list[float]] = {"aws": [], "aws_noop": [], "ours": [], "ours_noop": []}
        for r in range(rounds):
            if aws:
                out = work / f"aws-{r}"
                cmd = [str(aws), "s3", "sync", f"s3://{bucket}/{prefix}", str(out), "--endpoint-url", endpoint,
                       "--only-show-errors"]
                sync = partial(subprocess.run, cmd, env={**os.environ, **CREDS}, check=True)
                times["aws"].append(_timed(sync))
                times["aws_noop"].append(_timed(sync))
                shutil.rmtree(out, ignore_errors=True)
            data = DataConfig(source_type="minio", minio=cfg, cache_dir=work / f"ours-{r}",
                              output_dir=work / f"prepared-{r}")
            times["ours"].append(_timed(partial(fetch, data)))
            start = time.perf_counter()
            counts = fetch(data).counts
            times["ours_noop"].append(time.perf_counter() - start)
            assert counts.get("images") == n_objects, counts  # every JPEG landed and was validated
            shutil.rmtree(work / f"ours-{r}", ignore_errors=True)
            print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v),
                  file=sys.stderr)
        med = {k: _median(v) for k, v in times.items()}
        print(f"  fetch (transfer + validation), fresh cache   {med['ours']:6.2f} s")
        print(f"  fetch re-run, nothing changed                {med['ours_noop']:6.2f} s")
        if aws:
            print(f"  aws s3 sync, fresh folder                    {med['aws']:6.2f} s")
            print(f"  aws s3 sync re-run, nothing changed          {med['aws_noop']:6.2f} s")
            cold, noop = med["ours"] / med["aws"], med["ours_noop"] / med["aws_noop"]
            print(f"  cold ours/aws {cold:.2f}x (goal <= 1.0) -> {'OK' if cold <= 1.0 else 'BELOW GOAL'}")
            ok = noop <= 1.0 and med["ours_noop"] < 1.0
            print(f"  no-op ours/aws {noop:.2f}x, {med['ours_noop']:.2f} s (goal < 1 s and <= 1.0) -> "
                  f"{'OK' if ok else 'BELOW GOAL'}")
        shutil.rmtree(work, ignore_errors=True)
    finally:
        proc.terminate()
        proc.wait(10)


def bench_cvat(n_tasks: int, delay: float) -> None:
    from cvat_data import FakeTask
    from cvat_server import CvatServer, CvatState

    from rfdetr_trainer.integrations.cvat import fetch_cvat
    from rfdetr_trainer.schemas.data import CvatConfig

    state = CvatState(export_delay=delay)
    for i in range(1, n_tasks + 1):
        state.add_task(FakeTask(i, f"task {i}", n_images=40, image_size=(320, 240)))
    with CvatServer(state) as server:
        print(f"CVAT: {n_tasks} tasks of 40 images, simulated export delay {delay:g} s, {server.url}")
        work = Path(tempfile.mkdtemp(prefix="bench-cvat-"))
        base = dict(host=server.url, username="admin", password="secret", task_ids=list(range(1, n_tasks + 1)),
                    poll_interval=0.5)
        for choice in ("http", "sdk"):
            seq = CvatConfig(**base, concurrency=1, downloader=choice)
            par = CvatConfig(**base, concurrency=n_tasks, downloader=choice)
            t_seq = _timed(partial(fetch_cvat, seq, work / f"seq-{choice}"))
            t_par = _timed(partial(fetch_cvat, par, work / f"par-{choice}"))
            t_cached = _timed(partial(fetch_cvat, par, work / f"par-{choice}"))
            print(f"  {choice:5s} sequential {t_seq:6.2f} s | concurrent {t_par:6.2f} s | "
                  f"re-fetch cached {t_cached:5.2f} s")
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--export-delay", type=float, default=1.0)
    parser.add_argument("--skip", choices=["s3", "cvat"], action="append", default=[])
    args = parser.parse_args()
    if "s3" not in args.skip:
        bench_s3(args.objects, args.rounds)
    if "cvat" not in args.skip:
        bench_cvat(args.tasks, args.export_delay)


if __name__ == "__main__":
    main()
