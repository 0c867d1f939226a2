"""A CVAT or S3 endpoint that accepts connections and never answers fails in bounded time with one line.

The peer is a real loopback socket that accepts every connection and then sleeps: what a hung reverse proxy or
a stopped-but-listening server looks like. Timeouts are set small here (the defaults are checked by arithmetic
below: 5 attempts x 12 s + the backoffs, well under 90 s) and the time to fail is measured.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app
from rfdetr_trainer.errors import SourceError
from rfdetr_trainer.schemas.data import CvatConfig, MinioConfig

READ_TIMEOUT = 0.5
RETRIES = 1


@pytest.fixture
def silent_server() -> Iterator[str]:
    """``host:port`` of a socket that accepts connections and never sends a byte."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)  # keep it open, read nothing, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    listener.close()


def _cvat_env(monkeypatch, address: str, downloader: str) -> list[str]:
    monkeypatch.setenv("CVAT_HOST", f"http://bob:s3cr3t-pw@{address}")  # userinfo must never be echoed
    monkeypatch.setenv("CVAT_USERNAME", "bob")
    monkeypatch.setenv("CVAT_PASSWORD", "another-secret")
    monkeypatch.setenv("RFDETR_TRAINER_DATA__CVAT__READ_TIMEOUT_S", str(READ_TIMEOUT))
    monkeypatch.setenv("RFDETR_TRAINER_DATA__CVAT__RETRIES", str(RETRIES))
    monkeypatch.setenv("RFDETR_TRAINER_DATA__CVAT__RETRY_BACKOFF", "0.05")
    return ["--cvat-task-ids", "1", "--cvat-downloader", downloader]


def _s3_env(monkeypatch, address: str, downloader: str) -> list[str]:
    monkeypatch.setenv("MINIO_ENDPOINT", f"http://bob:s3cr3t-pw@{address}")
    monkeypatch.setenv("MINIO_ACCESS_KEY", "bob")
    monkeypatch.setenv("MINIO_SECRET_KEY", "another-secret")
    monkeypatch.setenv("RFDETR_TRAINER_DATA__MINIO__READ_TIMEOUT_S", str(READ_TIMEOUT))
    monkeypatch.setenv("RFDETR_TRAINER_DATA__MINIO__RETRIES", str(RETRIES))
    return ["--minio-bucket", "data", "--minio-prefix", "sets/a"]


# (id, environment, downloader, words of the one error line)
CASES = [
    pytest.param(_cvat_env, "http", ["CVAT http://***@", "no answer within 0.5 s", "2 attempts"], id="cvat-http"),
    pytest.param(_cvat_env, "sdk", ["CVAT http://***@", "no answer within 0.5 s", "2 attempts"], id="cvat-sdk"),
    pytest.param(_cvat_env, "http-legacy", ["CVAT http://***@", "no answer within 0.5 s"], id="cvat-legacy"),
    pytest.param(_cvat_env, "auto", ["CVAT http://***@", "no answer within 0.5 s"], id="cvat-auto"),
    pytest.param(_s3_env, None, ["S3 http://***@", "Read timeout"], id="s3"),
]


@pytest.mark.parametrize(("env", "downloader", "words"), CASES)
def test_silent_endpoint_fails_fast_with_one_line(silent_server, monkeypatch, tmp_path, env, downloader, words):
    monkeypatch.chdir(tmp_path)
    args = env(monkeypatch, silent_server, downloader)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["fetch", *args, "--data-dir", str(tmp_path / "out")])
    elapsed = time.monotonic() - started
    assert result.exit_code == SourceError.exit_code, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert silent_server in lines[0]  # names the endpoint
    assert "s3cr3t-pw" not in result.output and "another-secret" not in result.output
    # Each attempt waits one read timeout; S3's jittered backoff adds at most 1 s for one retry.
    assert (RETRIES + 1) * READ_TIMEOUT * 0.9 <= elapsed < (RETRIES + 1) * READ_TIMEOUT + 3.0, elapsed
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("section", [CvatConfig, MinioConfig])
def test_default_timeouts_fail_a_silent_server_within_90_s(section):
    """The worst case with defaults, as the README states it: attempts x read timeout + every backoff."""
    cfg = section()
    attempts = cfg.retries + 1
    backoff = getattr(cfg, "retry_backoff", 1.0)
    waits = sum(min(backoff * 2**n, 30.0) for n in range(cfg.retries))  # CVAT's schedule; botocore's is below it
    worst = attempts * cfg.read_timeout_s + waits
    assert worst <= 90, worst
    assert cfg.connect_timeout_s * attempts + waits <= 90


def test_long_export_wait_is_its_own_setting():
    """A slow CVAT export is polled under data.cvat.timeout (30 min), not the per-request read timeout."""
    cfg = CvatConfig()
    assert cfg.timeout >= 600 > cfg.read_timeout_s
