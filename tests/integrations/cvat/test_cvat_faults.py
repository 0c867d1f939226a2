"""fetch_cvat failure paths: credentials, missing and forbidden ids, failed exports, network faults, unsafe
archives, interrupted fetches, configuration errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support.source_configs import cvat_config

from rfdetr_trainer.errors import AuthError, ConfigError, SourceError
from rfdetr_trainer.integrations.cvat import fetch_cvat
from rfdetr_trainer.schemas.data import CvatConfig

DOWNLOADERS = [
    ("2.73.0", "http"), ("2.73.0", "sdk"), ("2.20.0", "http"), ("2.10.0", "http-legacy"), ("1.7.0", "http-legacy"),
]
IDS = [f"{v}-{d}" for v, d in DOWNLOADERS]


def _setup(cvat_factory, version, case):
    server = cvat_factory(version)
    state = server.state
    kw: dict = {"task_ids": [1]}
    if case == "wrong-password":
        kw["password"] = "wrong-secret-value"
    elif case == "missing-task":
        kw["task_ids"] = [99]
    elif case == "forbidden":
        state.tasks[1].owner = "other"
    elif case == "bad-token":
        kw.update(username=None, password=None, access_token="not-a-valid-token")
    return server, kw


# (case, error class, exit code, words the one-line message must hold)
ERROR_CASES = [
    ("wrong-password", AuthError, 6, ["login", "'admin'", "rejected"]),
    ("missing-task", SourceError, 5, ["task 99", "not found", "404"]),
    ("forbidden", AuthError, 6, ["task 1", "forbidden", "403"]),
]


@pytest.mark.parametrize("version,choice", DOWNLOADERS, ids=IDS)
@pytest.mark.parametrize("case,exc,code,words", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_clear_errors(cvat_factory, tmp_path, caplog, version, choice, case, exc, code, words):
    server, kw = _setup(cvat_factory, version, case)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(exc) as err:
        fetch_cvat(cvat_config(server, downloader=choice, **kw), tmp_path)
    error = err.value
    assert type(error) is exc and error.exit_code == code
    assert "\n" not in error.message and server.url in error.message
    for word in words:
        assert word in error.message
    everything = error.message + str(error.hint) + caplog.text
    assert "secret" not in everything, "a password leaked into a message or log"


@pytest.mark.parametrize("choice", ["http", "sdk"])
def test_bad_access_token(cvat_factory, tmp_path, choice):
    server, kw = _setup(cvat_factory, "2.73.0", "bad-token")
    with pytest.raises(AuthError) as err:
        fetch_cvat(cvat_config(server, downloader=choice, **kw), tmp_path)
    assert "HTTP 401" in err.value.message and "Invalid token" in err.value.message
    assert "not-a-valid-token" not in err.value.message + str(err.value.hint)


@pytest.mark.parametrize("version,choice", DOWNLOADERS, ids=IDS)
def test_failed_export_reports_server_message(cvat_factory, tmp_path, version, choice):
    server = cvat_factory(version)
    server.state.tasks[1].fail_export = (
        "cvat.apps.dataset_manager.bindings.CvatExportError: Failed to convert attribute 'color'\n"
    )
    with pytest.raises(SourceError) as err:
        fetch_cvat(cvat_config(server, task_ids=[1], downloader=choice, retries=1), tmp_path)
    assert "export of task 1 failed" in err.value.message
    assert "CvatExportError: Failed to convert attribute 'color'" in err.value.message
    assert not (tmp_path / "cvat").exists() or not list((tmp_path / "cvat").rglob("task-1*"))


@pytest.mark.parametrize("version,choice", DOWNLOADERS, ids=IDS)
def test_connection_dropped_mid_download_is_retried(cvat_factory, tmp_path, version, choice):
    server = cvat_factory(version)
    server.state.drop_downloads = 1
    (ref,) = fetch_cvat(cvat_config(server, task_ids=[1], downloader=choice), tmp_path)
    assert len(list(ref.path.rglob("*.jpg"))) == 3
    assert server.state.count(r"download") >= 2


@pytest.mark.parametrize("version,choice", DOWNLOADERS, ids=IDS)
@pytest.mark.parametrize(
    "where,status",
    [
        pytest.param(r"^GET /api(/v1)?/tasks/1$", 503, id="read-503"),
        pytest.param(r"^GET /api(/v1)?/tasks/1$", 429, id="read-429"),
        pytest.param(r"dataset(/export)?\?", 502, id="export-502"),
        pytest.param(r"dataset(/export)?\?", 504, id="export-504"),
    ],
)
def test_transient_status_twice_then_success(cvat_factory, tmp_path, version, choice, where, status):
    """The transport's Retry (urllib3, in requests or in cvat-sdk) rides out throttling and gateway errors."""
    server = cvat_factory(version)
    server.state.fail_next(where, 2, status=status)
    (ref,) = fetch_cvat(cvat_config(server, task_ids=[1], downloader=choice), tmp_path)
    assert (ref.path / "annotations/instances_default.json").is_file()
    assert server.state.count(where) >= 3


@pytest.mark.parametrize("version", ["2.10.0", "1.7.0"])
def test_legacy_export_500_twice_then_success(cvat_factory, tmp_path, version):
    """A legacy server reports a failed export as 500; asking again starts a new one (the state machine's loop)."""
    server = cvat_factory(version)
    server.state.fail_next(r"dataset\?", 2)
    (ref,) = fetch_cvat(cvat_config(server, task_ids=[1], downloader="http-legacy"), tmp_path)
    assert (ref.path / "annotations/instances_default.json").is_file()


@pytest.mark.parametrize("choice", ["http", "sdk"])
def test_plain_500_is_not_retried(cvat_factory, tmp_path, choice):
    """A 500 is CVAT failing, not a gateway or throttle: reported at once with the server's words."""
    server = cvat_factory()
    server.state.fail_next(r"^GET /api/tasks/1$", 1)
    with pytest.raises(SourceError) as err:
        fetch_cvat(cvat_config(server, task_ids=[1], downloader=choice), tmp_path)
    assert "HTTP 500" in err.value.message and "task 1" in err.value.message
    assert "attempts" not in err.value.message
    assert server.state.count(r"^GET /api/tasks/1$") == 1


@pytest.mark.parametrize("choice", ["http", "sdk"])
def test_persistent_5xx_gives_up_with_the_status(cvat_factory, tmp_path, choice):
    server = cvat_factory()
    server.state.fail_next(r"^GET /api/tasks/1$", 100, status=503)
    with pytest.raises(SourceError) as err:
        fetch_cvat(cvat_config(server, task_ids=[1], retries=2, downloader=choice), tmp_path)
    assert "4 attempts" not in err.value.message and "3 attempts" in err.value.message
    assert "HTTP 503" in err.value.message and "task 1" in err.value.message
    assert server.state.count(r"^GET /api/tasks/1$") == 3  # one retry policy, not a loop around another


@pytest.mark.parametrize("entry", ["../evil.txt", "/abs/evil.txt", "images/../../evil.txt"])
def test_archive_with_escaping_entries_is_refused(cvat_factory, tmp_path, entry):
    server = cvat_factory()
    server.state.tasks[1].evil_entries = (entry,)
    dest = tmp_path / "out"
    with pytest.raises(SourceError) as err:
        fetch_cvat(cvat_config(server, task_ids=[1]), dest)
    assert "refusing archive" in err.value.message and "task 1" in err.value.message
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (dest / "cvat").exists() or not [p for p in (dest / "cvat").rglob("*") if p.is_file()]


def test_interrupted_fetch_is_resumed(cvat_factory, tmp_path):
    server = cvat_factory()
    state = server.state
    state.tasks[2].fail_export = "RuntimeError: worker died"
    cfg = cvat_config(server, task_ids=[1, 2, 3], retries=0)
    with pytest.raises(SourceError) as err:
        fetch_cvat(cfg, tmp_path)
    assert "task 2" in err.value.message

    root = next((tmp_path / "cvat").iterdir())
    # Simulate a crash mid-way through task 3: a half-extracted temp folder and a folder without its marker.
    (root / ".task-3.tmp-deadbeef").mkdir()
    (root / ".task-3.zip-deadbeef.part-cafe0000").write_bytes(b"half")
    (root / "task-3.complete.json").unlink()

    state.tasks[2].fail_export = None
    before = state.count(r"^POST .*/export")
    refs = fetch_cvat(cfg, tmp_path)
    assert state.count(r"^POST .*/export") - before == 2  # tasks 2 and 3 redone; task 1 stayed cached
    assert state.count(r"^POST /api/tasks/1/dataset/export") == 1
    assert [r.origin["cached"] for r in refs] == [True, False, False]
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")]


def test_current_flow_on_an_old_server_says_so(cvat_factory, tmp_path):
    server = cvat_factory("2.10.0")
    with pytest.raises(SourceError) as err:
        fetch_cvat(cvat_config(server, task_ids=[1], downloader="http"), tmp_path)
    assert "predates CVAT 2.16" in err.value.message and "http-legacy" in err.value.hint


def test_export_timeout(cvat_factory, tmp_path):
    server = cvat_factory(export_delay=30)
    with pytest.raises(SourceError) as err:
        fetch_cvat(cvat_config(server, task_ids=[1], timeout=0.3), tmp_path)
    assert "did not finish within 0.3 s" in err.value.message


def test_unreachable_server(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connection refused
        cfg = CvatConfig(host=f"http://127.0.0.1:{port}", username="u", password="p", task_ids=[1],
                         retries=1, retry_backoff=0.01, downloader="http")
        with pytest.raises(SourceError) as err:
            fetch_cvat(cfg, tmp_path)
    assert "cannot reach the server" in err.value.message and str(port) in err.value.message


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"host": None}, "CVAT_HOST"),
        ({"username": None, "password": None}, "CVAT_USERNAME and CVAT_PASSWORD, or CVAT_ACCESS_TOKEN"),
        ({"password": None}, "CVAT_PASSWORD"),
        ({"username": None}, "CVAT_USERNAME"),
        ({"task_ids": []}, "--cvat-task-ids"),
    ],
)
def test_configuration_errors_name_the_variable(tmp_path, kw, needle):
    base = dict(host="http://127.0.0.1:9", username="admin", password="secret", task_ids=[1])
    base.update(kw)
    with pytest.raises(ConfigError) as err:
        fetch_cvat(CvatConfig(**base), tmp_path)
    assert err.value.exit_code == 3
    assert needle in err.value.message + " " + str(err.value.hint)
    assert not Path(tmp_path, "cvat").exists()
