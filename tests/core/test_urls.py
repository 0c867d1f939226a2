"""URL userinfo is masked wherever the tool prints, logs or records a URL."""

from __future__ import annotations

import logging

import pytest

from rfdetr_trainer.urls import MaskUserinfoFilter, mask_userinfo


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CVAT http://bob:pw@cvat.local:8080/api: down", "CVAT http://***@cvat.local:8080/api: down"),
        ("https://token@s3.example.com", "https://***@s3.example.com"),
        ("two: http://a:b@h1/x and s3+https://c:d@h2", "two: http://***@h1/x and s3+https://***@h2"),
        ("no userinfo: http://host:9000/path?q=a@b", "no userinfo: http://host:9000/path?q=a@b"),
        ("mail bob@example.com, not a URL", "mail bob@example.com, not a URL"),
        ("'http://u:p@h'", "'http://***@h'"),
    ],
)
def test_mask_userinfo(text, expected):
    assert mask_userinfo(text) == expected


def test_log_filter_masks_formatted_message():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "cannot reach %s", ("http://u:secret@h",), None)
    assert MaskUserinfoFilter().filter(record)
    assert record.getMessage() == "cannot reach http://***@h"
