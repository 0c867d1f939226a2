"""Loopback peers for the source tests: the fake CVAT server and moto's S3 server."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from support.cvat_data import FakeProject, FakeTask
from support.cvat_server import CvatServer, CvatState


@pytest.fixture
def cvat_factory() -> Iterator[Callable[..., CvatServer]]:
    """Start fake CVAT servers of a given version with tasks 1-3 and project 7 (tasks 11, 12); stopped after."""
    servers: list[CvatServer] = []

    def start(version: str = "2.73.0", **state_kw: object) -> CvatServer:
        state = CvatState(version=version, **state_kw)  # type: ignore[arg-type]
        for task_id in (1, 2, 3):
            state.add_task(FakeTask(task_id, f"task {task_id}"))
        state.add_project(
            FakeProject(7, "proj"),
            [FakeTask(11, "train part", subset="Train", n_images=4), FakeTask(12, "val part", subset="Validation")],
        )
        server = CvatServer(state)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, shared by the session (tests use their own buckets)."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str, request: pytest.FixtureRequest) -> tuple[object, str]:
    """A fresh bucket on the moto server and a boto3 client to fill it."""
    import re
    import uuid

    import boto3

    client = boto3.client(
        "s3", endpoint_url=moto_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:8]
    client.create_bucket(Bucket=name)
    return client, name


