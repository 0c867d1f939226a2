"""`fetch` and `run` through the CLI against the loopback CVAT server and moto's S3 server."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app
from rfdetr_trainer.errors import AuthError, ConfigError, SourceError
from rfdetr_trainer.synthetic import make_dataset

runner = CliRunner()


def _counts(dataset: Path) -> dict[str, int]:
    out = {}
    for split in ("train", "valid", "test"):
        ann = dataset / split / "_annotations.coco.json"
        out[split] = len(json.loads(ann.read_text())["images"]) if ann.is_file() else 0
    return out


def _cvat_env(monkeypatch, server, password="secret"):
    monkeypatch.setenv("CVAT_HOST", server.url)
    monkeypatch.setenv("CVAT_USERNAME", "admin")
    monkeypatch.setenv("CVAT_PASSWORD", password)
    monkeypatch.setenv("RFDETR_TRAINER_DATA__CVAT__POLL_INTERVAL", "0.02")
    monkeypatch.setenv("RFDETR_TRAINER_DATA__CVAT__RETRY_BACKOFF", "0.01")


@pytest.mark.parametrize("version", ["2.73.0", "2.10.0"])
def test_fetch_cvat_tasks_lays_out_train_valid_test(cvat_factory, monkeypatch, tmp_path, version):
    server = cvat_factory(version)
    _cvat_env(monkeypatch, server)
    out = tmp_path / "prepared"
    result = runner.invoke(app, ["fetch", "--cvat-task-ids", "1", "2", "3", "--data-dir", str(out),
                                 "--env-file", os.devnull],
                           env={"RFDETR_TRAINER_DATA__CACHE_DIR": str(tmp_path / "cache")})
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out.absolute()) or \
        result.stdout.strip().splitlines()[-1] == str(out)
    counts = _counts(out)
    assert sum(counts.values()) == 9 and all(counts.values()), counts
    manifest = json.loads((out / "dataset_manifest.json").read_text())
    origins = json.dumps(manifest)
    assert '"task_id": 1' in origins and server.url in origins
    assert "secret" not in origins and "secret" not in result.output


def test_fetch_cvat_errors_name_server_and_task(cvat_factory, monkeypatch, tmp_path):
    server = cvat_factory("2.73.0")
    _cvat_env(monkeypatch, server)
    env = {"RFDETR_TRAINER_DATA__CACHE_DIR": str(tmp_path / "cache")}
    missing = runner.invoke(app, ["fetch", "--cvat-task-ids", "99", "--data-dir", str(tmp_path / "o")], env=env)
    assert missing.exit_code == SourceError.exit_code, missing.output
    assert "99" in missing.stderr and server.url in missing.stderr
    _cvat_env(monkeypatch, server, password="wrong")
    denied = runner.invoke(app, ["fetch", "--cvat-task-ids", "1", "--data-dir", str(tmp_path / "o")], env=env)
    assert denied.exit_code == AuthError.exit_code, denied.output
    assert "wrong" not in denied.output


def test_design_example_without_cvat_host_fails_cleanly(tmp_path, monkeypatch):
    """`run --cvat-task-ids 123 456 789 --project-name MyProject --model-type large --epochs 150`, offline."""
    monkeypatch.setenv("RF_HOME", str(tmp_path / "weights"))  # the published weights are not cached
    example = ["run", "--cvat-task-ids", "123", "456", "789", "--project-name", "MyProject", "--model-type",
               "large", "--epochs", "150", "--output-dir", str(tmp_path), "--env-file", os.devnull]
    result = runner.invoke(app, example)
    assert result.exit_code == ConfigError.exit_code, result.output
    assert "--pretrain-weights" in result.stderr and "Traceback" not in result.output  # checked before any fetch
    result = runner.invoke(app, [*example, "--pretrain-weights", "none"])
    assert result.exit_code == ConfigError.exit_code, result.output
    assert "CVAT_HOST" in result.stderr and "Traceback" not in result.output


def test_fetch_s3_prefixes_merges_zip_and_folder(s3_bucket, moto_endpoint, monkeypatch, tmp_path):
    client, bucket = s3_bucket
    folder = make_dataset(tmp_path / "a", num_images=6, image_size=64, seed=1)
    for path in folder.rglob("*"):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=f"sets/a/{path.relative_to(folder)}", Body=path.read_bytes())
    cvat = make_dataset(tmp_path / "b", num_images=6, image_size=64, seed=2, layout="cvat")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in cvat.rglob("*"):
            if path.is_file():
                zf.write(path, path.relative_to(cvat).as_posix())
    client.put_object(Bucket=bucket, Key="sets/b.zip", Body=buf.getvalue())
    monkeypatch.setenv("MINIO_ENDPOINT", moto_endpoint)
    monkeypatch.setenv("MINIO_ACCESS_KEY", "testing")
    monkeypatch.setenv("MINIO_SECRET_KEY", "testing-secret-key")
    monkeypatch.setenv("MINIO_SECURE", "false")
    monkeypatch.setenv("MINIO_REGION", "us-east-1")
    out = tmp_path / "prepared"
    result = runner.invoke(app, ["fetch", "--minio-bucket", bucket, "--minio-prefix", "sets/", "--data-dir",
                                 str(out), "--json"], env={"RFDETR_TRAINER_DATA__CACHE_DIR": str(tmp_path / "c")})
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["sources"]) == 2
    assert sum(_counts(out).values()) == 12
    assert "testing-secret-key" not in result.output
    assert "testing-secret-key" not in (out / "dataset_manifest.json").read_text()


def test_design_example_four_fails_before_any_download(monkeypatch, tmp_path):
    """The design's base/640 example: base's block is 56, so 640 is refused at once, naming the fix."""
    monkeypatch.setenv("CVAT_HOST", "http://127.0.0.1:9")  # nothing listens there: a download would fail
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "token")
    result = runner.invoke(app, [
        "run", "--cvat-task-ids", "100", "--project-name", "ObjectDetection", "--task-name", "experiment-v1",
        "--model-type", "base", "--epochs", "200", "--batch-size", "4", "--lr", "0.0001", "--resolution", "640",
        "--early-stopping", "--early-stopping-patience", "20", "--export-format", "onnx", "--tags", "production",
        "v1.0", "--output-dir", str(tmp_path), "--env-file", os.devnull])
    assert result.exit_code == ConfigError.exit_code, result.output
    assert "640 is not divisible by 56" in result.stderr and "616 or 672" in result.stderr


@pytest.mark.slow
def test_run_uploads_artifacts_to_s3(s3_bucket, moto_endpoint, monkeypatch, tmp_path, tiny_dataset):
    """`run --upload-to s3://bucket/prefix` puts the best checkpoint, exported model and manifests in S3."""
    client, bucket = s3_bucket
    monkeypatch.setenv("MINIO_ENDPOINT", moto_endpoint)
    monkeypatch.setenv("MINIO_ACCESS_KEY", "testing")
    monkeypatch.setenv("MINIO_SECRET_KEY", "testing-secret-key")
    monkeypatch.setenv("MINIO_SECURE", "false")
    monkeypatch.setenv("MINIO_REGION", "us-east-1")
    result = runner.invoke(app, [
        "run", "--dataset-dir", str(tiny_dataset), "--output-dir", str(tmp_path), "--run-name", "up",
        "--pretrain-weights", "none", "--epochs", "1", "--batch-size", "4", "--grad-accum-steps", "1",
        "--resolution", "128", "--device", "cpu", "--num-workers", "0", "--upload-to", f"s3://{bucket}/runs/up",
        "--env-file", os.devnull])
    assert result.exit_code == 0, result.output
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="runs/up/")["Contents"]}
    assert {"runs/up/checkpoint_best_total.pth", "runs/up/model.onnx", "runs/up/run_manifest.json"} <= keys
    manifest = json.loads((tmp_path / "up" / "run_manifest.json").read_text())
    assert all(uri.startswith(f"s3://{bucket}/runs/up/") for uri in manifest["stages"]["upload"]["uris"])
    assert "testing-secret-key" not in json.dumps(manifest) and "testing-secret-key" not in result.output


def _minio_env(monkeypatch, moto_endpoint):
    monkeypatch.setenv("MINIO_ENDPOINT", moto_endpoint)
    monkeypatch.setenv("MINIO_ACCESS_KEY", "testing")
    monkeypatch.setenv("MINIO_SECRET_KEY", "testing-secret-key")
    monkeypatch.setenv("MINIO_SECURE", "false")
    monkeypatch.setenv("MINIO_REGION", "us-east-1")


@pytest.mark.parametrize("flag", ["--data-dir", "--output-dir", "-o"])
def test_fetch_one_s3_source_leaves_the_dataset_where_asked(s3_bucket, moto_endpoint, monkeypatch, tmp_path, flag):
    """Issue 8: one rfdetr-layout source under a prefix used to be left in the cache; OUT is where it must be."""
    client, bucket = s3_bucket
    folder = make_dataset(tmp_path / "a", num_images=6, image_size=64, seed=1)
    for path in folder.rglob("*"):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=f"P/{path.relative_to(folder)}", Body=path.read_bytes())
    _minio_env(monkeypatch, moto_endpoint)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["fetch", "--minio-bucket", bucket, "--minio-prefix", "P", flag, "OUT",
                                 "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    out = (tmp_path / "OUT").resolve()
    assert result.stdout.strip().splitlines()[-1] == str(out)  # absolute, though given relative
    assert _counts(out) == _counts(folder)
    cached = next((tmp_path / "cache").rglob("*.jpg"))
    placed = next(p for p in out.rglob(cached.name))
    assert os.stat(placed).st_ino == os.stat(cached).st_ino  # hard-linked from the cache, not copied


def test_cache_defaults_to_the_user_cache_folder_so_refetch_from_elsewhere_is_incremental(
        s3_bucket, moto_endpoint, monkeypatch, tmp_path):
    client, bucket = s3_bucket
    folder = make_dataset(tmp_path / "a", num_images=6, image_size=64, seed=1)
    for path in folder.rglob("*"):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=f"P/{path.relative_to(folder)}", Body=path.read_bytes())
    _minio_env(monkeypatch, moto_endpoint)
    user_cache = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(user_cache))
    seen = []
    for cwd in ("one", "two"):
        (tmp_path / cwd).mkdir()
        monkeypatch.chdir(tmp_path / cwd)
        result = runner.invoke(app, ["fetch", "--minio-bucket", bucket, "--minio-prefix", "P", "-o", "out"])
        assert result.exit_code == 0, result.output
        assert not (tmp_path / cwd / "data").exists()  # no data/cache under the working folder
        journal = next((user_cache / "rfdetr-trainer" / "s3" / ".journal").glob("*.jsonl"))
        seen.append({p: p.stat().st_mtime_ns for p in (user_cache / "rfdetr-trainer" / "s3").rglob("*.jpg")})
        assert journal.is_file()
    assert seen[0] and seen[0] == seen[1]  # the second fetch, from another folder, downloaded nothing again
