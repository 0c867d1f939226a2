"""The fetch checks each image as it lands, and validation reuses that check while the file is unchanged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.source_configs import minio_config

from rfdetr_trainer.coco import image_probe
from rfdetr_trainer.coco.validate import validate_dataset
from rfdetr_trainer.integrations.s3 import fetch_s3
from rfdetr_trainer.synthetic import make_photo_dataset


@pytest.fixture
def photo_bucket(s3_bucket, tmp_path):
    """10 real JPEGs in train/valid/test with COCO files under ``ds/``; valid's first image is cut short."""
    client, bucket = s3_bucket
    root = make_photo_dataset(tmp_path / "src", num_images=10, width=96, height=64, grain=4, seed=2)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        body = path.read_bytes()
        if path.name == "valid_00000.jpg":
            body = body[: len(body) // 2]
        client.put_object(Bucket=bucket, Key="ds/" + path.relative_to(root).as_posix(), Body=body)
    image_probe.forget_all()
    yield bucket
    image_probe.forget_all()


def _count_opens(monkeypatch) -> list[str]:
    from PIL import Image

    opened: list[str] = []
    real = Image.open

    def counting(fp, *args, **kwargs):
        opened.append(str(getattr(fp, "name", fp)))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting)
    return opened


def _codes(report) -> list[tuple[str, str]]:
    return sorted((f.code, Path(f.message.split(" ")[0]).name) for f in report.findings if f.code.startswith("image_"))


def test_validation_reuses_the_probe_taken_on_landing(photo_bucket, moto_endpoint, tmp_path, monkeypatch):
    cfg = minio_config(moto_endpoint, photo_bucket, prefixes=["ds/"])
    refs = fetch_s3(cfg, tmp_path / "cache")
    journal = tmp_path / "cache" / "s3" / ".journal" / f"{photo_bucket}.jsonl"
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    probed = {Path(r["key"]).name: r["probe"] for r in rows if "probe" in r}
    assert len(probed) == 10  # every JPEG, none of the JSON files
    assert probed["train_00000.jpg"] == ["", "", 96, 64, 1]  # decodes, 96x64, no EXIF rotation
    assert probed["valid_00000.jpg"][0] == "image_truncated"  # what Pillow's decoder says of the cut file

    opened = _count_opens(monkeypatch)
    report = validate_dataset(refs[0].path)
    assert opened == []  # nothing re-opened: the landing probe answered
    assert report.counts["images"] == 10
    truncated = [f for f in report.findings if f.code == "image_truncated"]
    assert len(truncated) == 1 and "valid_00000.jpg" in truncated[0].message


def test_noop_refetch_seeds_the_probe_from_the_journal(photo_bucket, moto_endpoint, tmp_path, monkeypatch):
    cfg = minio_config(moto_endpoint, photo_bucket, prefixes=["ds/"])
    refs = fetch_s3(cfg, tmp_path / "cache")
    direct = validate_dataset(refs[0].path)
    image_probe.forget_all()  # as in a new process

    opened = _count_opens(monkeypatch)
    refs = fetch_s3(cfg, tmp_path / "cache")
    report = validate_dataset(refs[0].path)
    assert opened == []
    assert _codes(report) == _codes(direct)

    # A file changed locally after it was probed is probed again, and only that one.
    changed = refs[0].path / "train" / "train_00001.jpg"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    image_probe.forget_all()
    fetch_s3(cfg, tmp_path / "cache")
    validate_dataset(refs[0].path)
    assert [Path(p).name for p in opened] == ["train_00001.jpg"]


def test_probe_matches_the_direct_check(tmp_path):
    root = make_photo_dataset(tmp_path / "d", num_images=5, width=80, height=48, grain=2, seed=4)
    cut = root / "train" / "train_00000.jpg"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    (root / "train" / "train_00001.jpg").write_bytes(b"not an image")
    trailing = root / "train" / "train_00002.jpg"  # data after the end marker, as motion photos carry: it decodes
    trailing.write_bytes(trailing.read_bytes() + b"\x00MotionPhoto" * 40)
    image_probe.forget_all()
    direct = validate_dataset(root)
    for path in root.rglob("*.jpg"):
        image_probe.probe_and_remember(path)
    memo = validate_dataset(root)
    image_probe.forget_all()
    assert [(f.code, f.message) for f in memo.findings] == [(f.code, f.message) for f in direct.findings]
    assert {"image_truncated", "image_unreadable"} <= {f.code for f in direct.findings}
    assert not any("train_00002.jpg" in f.message for f in memo.findings)
    assert image_probe.probe_file(trailing)[0] == ""
