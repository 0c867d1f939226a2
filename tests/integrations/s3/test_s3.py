"""fetch_s3 and upload_artifacts against moto's S3 server on loopback, driven by real boto3."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from support.fault_proxy import FaultProxy
from support.source_configs import minio_config

from rfdetr_trainer.errors import ConfigError, OutputError, SourceError
from rfdetr_trainer.integrations.s3 import fetch_s3, upload_artifacts

COCO = json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "car"}]}).encode()


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _fill(client, bucket: str) -> dict[str, bytes]:
    objects = {
        # CVAT export layout
        "data/cvat1/annotations/instances_default.json": COCO,
        "data/cvat1/images/default/a.jpg": b"a" * 3000,
        "data/cvat1/images/default/sub/b.jpg": b"b" * 10,
        # Roboflow / rfdetr layout: one dataset, three splits
        "data/rf/train/_annotations.coco.json": COCO,
        "data/rf/train/c.jpg": b"c" * 20,
        "data/rf/valid/_annotations.coco.json": COCO,
        "data/rf/test/_annotations.coco.json": COCO,
        # archive
        "data/pack.zip": _zip({"annotations/instances_train.json": COCO, "images/train/d.jpg": b"d" * 5}),
        # under another prefix, and noise outside any dataset
        "more/flat/coco.json": COCO,
        "more/flat/e.jpg": b"e",
        "other/ignored.jpg": b"x",
        "data/readme-only/notes.txt": b"no json here",
    }
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    return objects


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _last(seen):
    return seen[-1] if seen else (0, 0, 0, 0)


def test_layouts_zips_and_several_prefixes(s3_bucket, moto_endpoint, tmp_path):
    client, bucket = s3_bucket
    objects = _fill(client, bucket)
    refs = fetch_s3(minio_config(moto_endpoint, bucket, prefixes=["data/", "more/"]), tmp_path)

    by_name = {r.name: r for r in refs}
    assert sorted(by_name) == sorted(
        [f"s3-{bucket}-data-cvat1", f"s3-{bucket}-data-rf", f"s3-{bucket}-more-flat", f"s3-{bucket}-data-pack"]
    )
    cvat = by_name[f"s3-{bucket}-data-cvat1"]
    assert cvat.path == tmp_path / "s3" / bucket / "data" / "cvat1"
    assert _tree(cvat.path) == {k.removeprefix("data/cvat1/"): v for k, v in objects.items()
                                if k.startswith("data/cvat1/")}
    assert cvat.origin["bucket"] == bucket and cvat.origin["key"] == "data/cvat1/"
    assert cvat.origin["objects"] == 3 and cvat.origin["etag"]
    assert sorted(_tree(by_name[f"s3-{bucket}-data-rf"].path)) == [
        "test/_annotations.coco.json", "train/_annotations.coco.json", "train/c.jpg", "valid/_annotations.coco.json",
    ]
    pack = by_name[f"s3-{bucket}-data-pack"]
    assert _tree(pack.path) == {"annotations/instances_train.json": COCO, "images/train/d.jpg": b"ddddd"}
    assert pack.origin["key"] == "data/pack.zip" and len(pack.origin["etag"]) == 32
    assert not (tmp_path / "s3" / bucket / "data" / "pack.zip").exists(), "the zip is dropped once extracted"
    assert not (tmp_path / "s3" / bucket / "other").exists()
    assert not [p for p in (tmp_path / "s3" / bucket).rglob(".*")], "no temporary files left"


def test_refetch_skips_unchanged_and_picks_up_changes(s3_bucket, moto_endpoint, tmp_path):
    client, bucket = s3_bucket
    _fill(client, bucket)
    cfg = minio_config(moto_endpoint, bucket, prefixes=["data/"])
    seen: list = []
    fetch_s3(cfg, tmp_path, progress=lambda *a: seen.append(a))
    assert _last(seen)[:2] == (8, 8) and _last(seen)[2] == _last(seen)[3] > 3000

    seen.clear()
    fetch_s3(cfg, tmp_path, progress=lambda *a: seen.append(a))
    assert _last(seen)[1] == 0, "nothing changed, nothing downloaded"

    client.put_object(Bucket=bucket, Key="data/cvat1/images/default/a.jpg", Body=b"new")
    client.put_object(Bucket=bucket, Key="data/pack.zip", Body=_zip({"annotations/instances_x.json": COCO}))
    seen.clear()
    refs = fetch_s3(cfg, tmp_path, progress=lambda *a: seen.append(a))
    assert _last(seen)[:2] == (2, 2)
    root = tmp_path / "s3" / bucket / "data"
    assert (root / "cvat1/images/default/a.jpg").read_bytes() == b"new"
    assert _tree(next(r.path for r in refs if r.name.endswith("pack"))) == {"annotations/instances_x.json": COCO}

    # A local file damaged behind our back (size differs) is fetched again.
    (root / "cvat1/images/default/sub/b.jpg").write_bytes(b"truncated!!!")
    seen.clear()
    fetch_s3(cfg, tmp_path, progress=lambda *a: seen.append(a))
    assert _last(seen)[1] == 1 and (root / "cvat1/images/default/sub/b.jpg").read_bytes() == b"b" * 10

    seen.clear()
    fetch_s3(cfg.model_copy(update={"refresh": True}), tmp_path, progress=lambda *a: seen.append(a))
    assert _last(seen)[1] == 8


def test_interrupted_fetch_resumes(s3_bucket, moto_endpoint, tmp_path, monkeypatch):
    import rfdetr_trainer.integrations.s3.fetch as s3mod

    client, bucket = s3_bucket
    for i in range(30):
        client.put_object(Bucket=bucket, Key=f"ds/images/{i:02d}.jpg", Body=bytes([i]) * 500)
    client.put_object(Bucket=bucket, Key="ds/annotations/instances_default.json", Body=COCO)
    cfg = minio_config(moto_endpoint, bucket, prefixes=["ds/"], concurrency=2)

    real = s3mod.download_object

    def dies_on_17(client_, cfg_, bucket_, obj, target, progress):
        if obj.key.endswith("17.jpg"):
            # A half-written temp file, as a killed process would leave.
            target.parent.mkdir(parents=True, exist_ok=True)
            target.with_name(f".{target.name}.part-deadbeef").write_bytes(b"half")
            raise SourceError("simulated crash")
        return real(client_, cfg_, bucket_, obj, target, progress)

    monkeypatch.setattr(s3mod, "download_object", dies_on_17)
    with pytest.raises(SourceError):
        fetch_s3(cfg, tmp_path)
    monkeypatch.setattr(s3mod, "download_object", real)
    landed_before = len(list((tmp_path / "s3" / bucket).rglob("*.jpg")))
    assert 0 < landed_before < 30

    seen: list = []
    (ref,) = fetch_s3(cfg, tmp_path, progress=lambda *a: seen.append(a))
    assert _last(seen)[1] == 31 - landed_before - ((tmp_path / "s3" / bucket / "ds/annotations").is_dir())
    assert len(list(ref.path.rglob("*.jpg"))) == 30
    assert not [p for p in ref.path.rglob(".*")]


UNSAFE_KEYS = [
    ("data/../../evil.json", "escape the output folder"),
    ("data/x/../../../evil.jpg", "escape the output folder"),
    ("data/ok/images/default//a.jpg", "same file as key 'data/ok/images/default/a.jpg'"),
]


@pytest.mark.parametrize(("key", "reason"), UNSAFE_KEYS)
def test_unsafe_key_is_skipped_and_recorded_the_rest_fetched(s3_bucket, moto_endpoint, tmp_path, caplog, key, reason):
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="data/ok/annotations/instances_default.json", Body=COCO)
    client.put_object(Bucket=bucket, Key="data/ok/images/default/a.jpg", Body=b"a" * 7)
    client.put_object(Bucket=bucket, Key=key, Body=b"evil")
    dest = tmp_path / "out"
    with caplog.at_level("WARNING", logger="rfdetr_trainer"):
        (ref,) = fetch_s3(minio_config(moto_endpoint, bucket, prefixes=["data/"]), dest)
    assert ref.origin["skipped_keys"] == [{"key": key, "reason": ref.origin["skipped_keys"][0]["reason"]}]
    assert reason in ref.origin["skipped_keys"][0]["reason"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and repr(key) in warnings[0]
    assert (ref.path / "images" / "default" / "a.jpg").read_bytes() == b"a" * 7
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"evil"]


@pytest.mark.parametrize(("key", "reason"), UNSAFE_KEYS)
def test_unsafe_key_with_strict_is_refused_before_anything_is_written(s3_bucket, moto_endpoint, tmp_path, key, reason):
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="data/ok/annotations/instances_default.json", Body=COCO)
    client.put_object(Bucket=bucket, Key="data/ok/images/default/a.jpg", Body=b"a" * 7)
    client.put_object(Bucket=bucket, Key=key, Body=b"evil")
    with pytest.raises(SourceError) as err:
        fetch_s3(minio_config(moto_endpoint, bucket, prefixes=["data/"]), tmp_path / "out", strict=True)
    assert err.value.exit_code == 5
    assert reason in err.value.message and key in err.value.message
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "nothing may be written"


def test_zip_with_escaping_entries_is_refused(s3_bucket, moto_endpoint, tmp_path):
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="z/bad.zip", Body=_zip({"annotations/i.json": COCO, "../evil.txt": b"x"}))
    with pytest.raises(SourceError) as err:
        fetch_s3(minio_config(moto_endpoint, bucket, prefixes=["z/"]), tmp_path / "out")
    assert "refusing archive" in err.value.message and "z/bad.zip" in err.value.message
    assert not list(tmp_path.rglob("evil.txt")) and not list(tmp_path.rglob("i.json"))


@pytest.mark.parametrize("fault", ["500-twice", "drop-once", "drop-once-s3transfer"])
def test_transient_faults_are_retried(s3_bucket, moto_endpoint, tmp_path, monkeypatch, fault):
    """botocore retries the 5xx; a body cut halfway is read again (by _get_body, or by s3transfer for objects
    above the multipart threshold), once each: no loop around the libraries' own retries."""
    client, bucket = s3_bucket
    _fill(client, bucket)
    if fault == "drop-once-s3transfer":
        monkeypatch.setattr("rfdetr_trainer.integrations.s3.fetch._MULTIPART_THRESHOLD", 1000)
    proxy = FaultProxy(moto_endpoint)
    try:
        if fault == "500-twice":
            proxy.fail(r"^GET /[^?]*/data/cvat1/images/default/a\.jpg", 2)
            proxy.fail(r"^GET /[^?]*\?list-type=2", 2)
        else:
            proxy.drop(r"^GET /[^?]*/data/cvat1/images/default/a\.jpg", 1)
        refs = fetch_s3(minio_config(proxy.url, bucket, prefixes=["data/"], retries=3), tmp_path)
    finally:
        proxy.close()
    cvat = next(r for r in refs if r.name.endswith("cvat1"))
    assert (cvat.path / "images/default/a.jpg").read_bytes() == b"a" * 3000
    assert proxy.count(r"^GET /[^?]*/data/cvat1/images/default/a\.jpg") == (3 if fault == "500-twice" else 2)


@pytest.mark.parametrize("threshold", [None, 1000], ids=["get", "s3transfer"])
def test_body_broken_every_time_gives_up_after_the_configured_attempts(s3_bucket, moto_endpoint, tmp_path,
                                                                     monkeypatch, threshold):
    client, bucket = s3_bucket
    _fill(client, bucket)
    if threshold:
        monkeypatch.setattr("rfdetr_trainer.integrations.s3.fetch._MULTIPART_THRESHOLD", threshold)
    proxy = FaultProxy(moto_endpoint)
    try:
        proxy.drop(r"^GET /[^?]*/data/cvat1/images/default/a\.jpg", 100)
        with pytest.raises(SourceError) as err:
            fetch_s3(minio_config(proxy.url, bucket, prefixes=["data/cvat1/"], retries=1), tmp_path)
    finally:
        proxy.close()
    assert proxy.count(r"^GET /[^?]*/data/cvat1/images/default/a\.jpg") == 2  # retries + 1 reads, no more
    assert "downloading 'data/cvat1/images/default/a.jpg' failed" in err.value.message
    assert "RetriesExceeded" not in err.value.message  # s3transfer's wrapper is unwrapped to the cause
    assert not (tmp_path / "s3" / bucket / "data/cvat1/images/default/a.jpg").exists()


def test_persistent_failure_gives_up(s3_bucket, moto_endpoint, tmp_path):
    client, bucket = s3_bucket
    _fill(client, bucket)
    proxy = FaultProxy(moto_endpoint)
    try:
        proxy.fail(r"data/cvat1/images/default/a\.jpg", 100)
        with pytest.raises(SourceError) as err:
            fetch_s3(minio_config(proxy.url, bucket, prefixes=["data/cvat1/"], retries=1), tmp_path)
    finally:
        proxy.close()
    assert "data/cvat1/images/default/a.jpg" in err.value.message and bucket in err.value.message
    assert not (tmp_path / "s3" / bucket / "data/cvat1/images/default/a.jpg").exists()


@pytest.mark.parametrize(
    "kw,exc,needle",
    [
        ({"bucket": None}, ConfigError, "--minio-bucket"),
        ({"secret_key": None}, ConfigError, "MINIO_SECRET_KEY"),
        ({"bucket": "no-such-bucket-here"}, SourceError, "bucket not found"),
        ({"prefixes": ["nothing/"]}, SourceError, "no dataset under 'nothing/'"),
        ({"endpoint": "127.0.0.1:9", "retries": 0}, SourceError, "cannot reach the endpoint"),
    ],
)
def test_configuration_and_source_errors(s3_bucket, moto_endpoint, tmp_path, kw, exc, needle):
    _client, bucket = s3_bucket
    args = {"endpoint": moto_endpoint, "bucket": bucket, **kw}
    with pytest.raises(exc) as err:
        fetch_s3(minio_config(args.pop("endpoint"), args.pop("bucket"), **args), tmp_path)
    assert needle in err.value.message + " " + str(err.value.hint)
    assert "testing" not in err.value.message, "no secret in messages"


def test_upload_artifacts(s3_bucket, moto_endpoint, tmp_path):
    client, bucket = s3_bucket
    ckpt = tmp_path / "checkpoint_best_total.pth"
    ckpt.write_bytes(b"\x01" * (9 * 1024 * 1024))  # above the 8 MiB multipart threshold
    export = tmp_path / "export"
    (export / "onnx").mkdir(parents=True)
    (export / "onnx" / "model.onnx").write_bytes(b"onnx")
    (export / "manifest.json").write_text("{}")
    seen: list = []
    uris = upload_artifacts(minio_config(moto_endpoint, bucket), [ckpt, export], f"s3://{bucket}/runs/r1/",
                            progress=lambda *a: seen.append(a))
    assert uris == [
        f"s3://{bucket}/runs/r1/checkpoint_best_total.pth",
        f"s3://{bucket}/runs/r1/export/manifest.json",
        f"s3://{bucket}/runs/r1/export/onnx/model.onnx",
    ]
    body = client.get_object(Bucket=bucket, Key="runs/r1/checkpoint_best_total.pth")["Body"].read()
    assert body == ckpt.read_bytes()
    assert _last(seen)[:2] == (3, 3) and _last(seen)[2] == _last(seen)[3] == ckpt.stat().st_size + 6

    with pytest.raises(OutputError):
        upload_artifacts(minio_config(moto_endpoint, bucket), [tmp_path / "missing"], f"s3://{bucket}/x")
    with pytest.raises(ConfigError):
        upload_artifacts(minio_config(moto_endpoint, bucket), [ckpt], "bucket/x")


def test_no_heavy_imports_at_module_level():
    import subprocess
    import sys

    code = (
        "import sys, rfdetr_trainer.integrations.s3, rfdetr_trainer.integrations.cvat;"
        "bad=[m for m in ('boto3','botocore','cvat_sdk') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_rich_progress_rows(s3_bucket, moto_endpoint, tmp_path):
    import io as _io

    from rich.console import Console
    from rich.progress import Progress

    from rfdetr_trainer.integrations.progress import stderr_progress

    client, bucket = s3_bucket
    _fill(client, bucket)
    with Progress(console=Console(file=_io.StringIO()), disable=True) as bar:
        fetch_s3(minio_config(moto_endpoint, bucket, prefixes=["data/"]), tmp_path, progress=bar)
        files, nbytes = bar.tasks
    assert (files.completed, files.total) == (8, 8)
    assert nbytes.completed == nbytes.total > 3000
    with stderr_progress(disable=True) as bar:  # the CLI's bar builds and accepts the same calls
        fetch_s3(minio_config(moto_endpoint, bucket, prefixes=["data/"], refresh=True), tmp_path / "2", progress=bar)
        assert bar.tasks[0].completed == 8
