"""The fake CVAT server itself follows the protocol document (so the client tests mean something)."""

from __future__ import annotations

import pytest
import requests


@pytest.mark.parametrize(
    "version,prefix,fields",
    [("2.73.0", "/api", 5), ("2.29.0", "/api", 3), ("1.7.0", "/api/v1", 3)],
)
def test_about_shape_per_version(cvat_factory, version, prefix, fields):
    server = cvat_factory(version)
    about = requests.get(f"{server.url}{prefix}/server/about", timeout=5).json()
    assert len(about) == fields and about["version"] == version
    if prefix == "/api/v1":
        assert requests.get(f"{server.url}/api/server/about", timeout=5).status_code == 404


def test_session_login_cookies_and_csrf(cvat_factory):
    server = cvat_factory()
    s = requests.Session()
    r = s.post(f"{server.url}/api/auth/login", json={"username": "admin", "password": "secret"}, timeout=5)
    assert r.status_code == 200 and len(r.json()["key"]) == 40
    assert {"sessionid", "csrftoken"} <= set(s.cookies.keys())
    assert s.get(f"{server.url}/api/tasks/1", timeout=5).status_code == 200
    export = f"{server.url}/api/tasks/1/dataset/export?format=COCO+1.0"
    r = s.post(export, timeout=5)
    assert r.status_code == 403 and r.json() == {"detail": "CSRF Failed: CSRF token missing."}
    r = s.post(export, headers={"X-CSRFToken": s.cookies["csrftoken"]}, timeout=5)
    assert r.status_code == 202 and r.json()["rq_id"].startswith("action=export&target=task&target_id=1")


@pytest.mark.parametrize(
    "headers,status,detail",
    [
        ({}, 401, "Authentication credentials were not provided."),
        ({"Authorization": "Basic YWRtaW46c2VjcmV0"}, 200, None),  # admin:secret
        ({"Authorization": "Basic YWRtaW46bm9wZQ=="}, 401, "Invalid username/password."),
        ({"Authorization": "Bearer pat-admin-0123456789"}, 200, None),
        ({"Authorization": "Token nope"}, 401, "Invalid token."),
    ],
)
def test_auth_schemes(cvat_factory, headers, status, detail):
    server = cvat_factory()
    r = requests.get(f"{server.url}/api/tasks/1", headers=headers, timeout=5)
    assert r.status_code == status
    if detail:
        assert r.json() == {"detail": detail}


def test_wrong_password_is_400_and_404_body_per_version(cvat_factory):
    old, new = cvat_factory("2.20.0"), cvat_factory("2.73.0")
    r = requests.post(f"{new.url}/api/auth/login", json={"username": "admin", "password": "x"}, timeout=5)
    assert r.status_code == 400 and "Unable to log in" in r.text
    basic = {"Authorization": "Basic YWRtaW46c2VjcmV0"}
    assert requests.get(f"{old.url}/api/tasks/5", headers=basic, timeout=5).json() == {"detail": "Not found."}
    assert requests.get(f"{new.url}/api/tasks/5", headers=basic, timeout=5).json() == {
        "detail": "No Task matches the given query."
    }


def test_legacy_state_machine_and_410(cvat_factory):
    old, new = cvat_factory("2.10.0"), cvat_factory("2.73.0")
    basic = {"Authorization": "Basic YWRtaW46c2VjcmV0"}
    url = f"{old.url}/api/tasks/1/dataset?format=COCO%201.0"
    assert requests.get(url, headers=basic, timeout=5).status_code == 202
    import time

    time.sleep(old.state.export_delay + 0.05)
    assert requests.get(url, headers=basic, timeout=5).status_code == 201
    r = requests.get(url + "&action=download", headers=basic, timeout=5)
    assert r.status_code == 200 and r.content[:2] == b"PK"
    assert requests.get(url, headers=basic, timeout=5).status_code == 202  # served once: a new export
    r = requests.get(f"{new.url}/api/tasks/1/dataset?format=COCO%201.0", headers=basic, timeout=5)
    assert r.status_code == 410 and "no longer supported" in r.text


def test_real_sdk_make_client_needs_full_about(cvat_factory, tmp_path):
    """Why the sdk downloader builds Client(check_server_version=False): make_client crashes before 2.30."""
    from cvat_sdk import make_client

    new, old = cvat_factory("2.73.0"), cvat_factory("2.25.0")
    with make_client(new.url, credentials=("admin", "secret")) as client:
        client.config.status_check_period = 0.02
        client.tasks.retrieve(1).export_dataset("COCO 1.0", tmp_path / "t1.zip", include_images=True)
    assert (tmp_path / "t1.zip").stat().st_size > 0
    with pytest.raises(TypeError):
        make_client(old.url, credentials=("admin", "secret"))
