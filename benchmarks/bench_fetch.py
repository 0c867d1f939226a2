"""Fetch throughput: S3 (moto server) and CVAT (the test server), ours against the obvious alternatives.

S3: 2,000 objects of 60 KB under one dataset prefix, served by moto's server in its own process.
  - naive: sequential boto3 list + get_object + write
  - aws s3 sync (awscli installed into /tmp/aws-venv when missing; skipped if that fails)
  - fetch_s3, then a re-fetch with nothing changed
CVAT: several tasks with a simulated export delay on the loopback test server.
  - fetch_cvat with concurrency 1 (sequential) vs concurrency N, then a cached re-fetch

Usage: python benchmarks/bench_fetch.py [--objects 2000] [--size 61440] [--tasks 6] [--export-delay 1.0]
Prints one line per measurement; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
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
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}"


def _aws_cli() -> Path | None:
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


def bench_s3(n_objects: int, size: int) -> None:
    import boto3

    from rfdetr_trainer.integrations.s3 import fetch_s3
    from rfdetr_trainer.schemas.data import MinioConfig

    os.environ.update(CREDS)
    proc, endpoint = _start_moto()
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        bucket, prefix = "bench", "ds/"
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key=f"{prefix}annotations/instances_default.json", Body=b"{}")
        payload = os.urandom(size)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: client.put_object(Bucket=bucket, Key=f"{prefix}images/default/{i:05d}.jpg",
                                                      Body=payload), range(n_objects)))
        total_mb = n_objects * size / 1e6
        print(f"S3: {n_objects + 1} objects, {total_mb:.1f} MB, moto server at {endpoint}")
        work = Path(tempfile.mkdtemp(prefix="bench-fetch-"))

        def naive() -> None:
            out = work / "naive"
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    target = out / item["Key"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())

        print(f"  naive sequential boto3          {_timed(naive):6.2f} s")

        aws = _aws_cli()
        if aws:
            cmd = [str(aws), "s3", "sync", f"s3://{bucket}/{prefix}", str(work / "aws"), "--endpoint-url", endpoint,
                   "--only-show-errors"]
            sync = partial(subprocess.run, cmd, env={**os.environ, **CREDS}, check=True)
            print(f"  aws s3 sync                     {_timed(sync):6.2f} s")
            print(f"  aws s3 sync (nothing changed)   {_timed(sync):6.2f} s")

        cfg = MinioConfig(endpoint=endpoint, access_key="bench", secret_key="bench", secure=False, bucket=bucket,
                          prefixes=[prefix])
        ours = partial(fetch_s3, cfg, work / "ours")
        print(f"  fetch_s3 (concurrency {cfg.concurrency})        {_timed(ours):6.2f} s")
        print(f"  fetch_s3 re-fetch, unchanged    {_timed(ours):6.2f} s")
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
    parser.add_argument("--size", type=int, default=60 * 1024)
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--export-delay", type=float, default=1.0)
    parser.add_argument("--skip", choices=["s3", "cvat"], action="append", default=[])
    args = parser.parse_args()
    if "s3" not in args.skip:
        bench_s3(args.objects, args.size)
    if "cvat" not in args.skip:
        bench_cvat(args.tasks, args.export_delay)


if __name__ == "__main__":
    main()
