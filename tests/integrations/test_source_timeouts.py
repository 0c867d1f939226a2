"""A CVAT or S3 endpoint that accepts connections and never answers fails in bounded time with one line.

The peer is a real loopback socket that accepts every connection and then sleeps: what a hung reverse proxy or
a stopped-but-listening server looks like. Timeouts are set small here (the defaults are checked by arithmetic
below: 5 attempts x 12 s + the backoffs of the clients' Retry, 75 s as README.md states) and the time to fail is
measured.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from support import REPO
from typer.testing import CliRunner
from urllib3 import HTTPResponse
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from rfdetr_trainer.cli.app import app
from rfdetr_trainer.errors import SourceError
from rfdetr_trainer.integrations.cvat.base import connection_from_config
from rfdetr_trainer.integrations.cvat.retry import RETRY_AFTER_MAX, retry_policy
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
    if env is _cvat_env:  # the wait is announced before the first request, not discovered after it
        notices = [line for line in result.stderr.splitlines() if "connecting to CVAT" in line]
        assert len(notices) == 1, result.stderr
        assert f"http://***@{silent_server}" in notices[0] and "waits up to 0.5 s" in notices[0], notices[0]
        assert result.stderr.index(notices[0]) < result.stderr.index(lines[0])
    assert "s3cr3t-pw" not in result.output and "another-secret" not in result.output
    # Each attempt waits one read timeout; S3's jittered backoff adds at most 1 s for one retry.
    assert (RETRIES + 1) * READ_TIMEOUT * 0.9 <= elapsed < (RETRIES + 1) * READ_TIMEOUT + 3.0, elapsed
    assert not (tmp_path / "out").exists()


def test_default_timeouts_fail_a_silent_cvat_server_in_the_time_the_readme_states():
    """attempts x read timeout + the backoffs of the Retry the clients really use, as README.md states it."""
    conn = connection_from_config(CvatConfig(host="cvat.example", username="u", password="p"))
    policy = retry_policy(conn)
    waits = []
    for _ in range(conn.retries):
        policy = policy.increment("GET", "/api/tasks/1", error=ReadTimeoutError(None, "/api/tasks/1", "silent"))
        waits.append(policy.get_backoff_time())
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/api/tasks/1", error=ReadTimeoutError(None, "/api/tasks/1", "silent"))
    assert waits == [1.0, 2.0, 4.0, 8.0]  # data.cvat.retry_backoff: 1 s before the first retry, doubling
    worst = conn.silent_server_worst_case()
    assert worst == (conn.retries + 1) * conn.read_timeout + sum(waits) == 75.0
    assert (conn.retries + 1) * conn.connect_timeout + sum(waits) <= worst
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"= **{worst:g} s**" in readme


def test_retry_after_is_obeyed_up_to_a_cap():
    """A throttling server's Retry-After is honoured, but a proxy asking for an hour cannot stall a fetch."""
    policy = retry_policy(connection_from_config(CvatConfig(host="cvat.example", username="u", password="p")))
    assert policy.get_retry_after(HTTPResponse(status=429, headers={"Retry-After": "3"})) == 3
    assert policy.get_retry_after(HTTPResponse(status=429, headers={"Retry-After": "3600"})) == RETRY_AFTER_MAX
    assert policy.is_retry("GET", 429) and policy.is_retry("POST", 503)
    assert not policy.is_retry("PATCH", 503)  # creating annotations twice is not a retry
    assert not policy.is_retry("GET", 500)


def test_default_timeouts_fail_a_silent_s3_endpoint_within_90_s():
    """The worst case with defaults: attempts x read timeout + backoffs (botocore's are below CVAT's)."""
    cfg = MinioConfig()
    attempts = cfg.retries + 1
    waits = sum(min(2**n, 30.0) for n in range(cfg.retries))
    worst = attempts * cfg.read_timeout_s + waits
    assert worst <= 90, worst
    assert cfg.connect_timeout_s * attempts + waits <= 90


def test_long_export_wait_is_its_own_setting():
    """A slow CVAT export is polled under data.cvat.timeout (30 min), not the per-request read timeout."""
    cfg = CvatConfig()
    assert cfg.timeout >= 600 > cfg.read_timeout_s
