"""annotate with a segmentation model: the server receives polygons traced from the model's masks (issue 12 item 1).

The model is a real SegNano trained from scratch for one step through the CLI (96 px, CPU): its masks are noise,
but noise is enough to check what annotate does with a mask. The oracle is rfdetr's own ``predict``: every uploaded
shape must be one of its detections (same score, box and class name), a polygon must trace that detection's mask
(every vertex a mask pixel), and a rectangle is allowed only where the mask holds no outline. The frames are cropped
to a non-square size different from the model's, so the mask is stretched back to the frame as rfdetr does.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.cvat_data import FakeTask
from support.cvat_server import CvatServer, CvatState
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app
from rfdetr_trainer.synthetic import make_dataset

SEG_TRAIN = ["--model-type", "seg-nano", "--pretrain-weights", "none", "--epochs", "1", "--batch-size", "2",
             "--grad-accum-steps", "1", "--resolution", "96", "--device", "cpu", "--num-workers", "0",
             "--no-tensorboard", "--no-clearml", "--max-steps", "1", "--multi-scale", "off", "--augment", "none"]
#: The task names the model's classes in another order, so a label is found by name, not by class index.
TASK_LABELS = ("triangle", "circle", "square")
FRAME_SIZE = (120, 90)  # width, height: not square, not the model's 96 px


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-seg")
    dataset = make_dataset(root / "data", num_images=4, image_size=128, seed=5)
    result = CliRunner().invoke(app, ["train", "--dataset-dir", str(dataset), "--output-dir", str(root / "runs"),
                                      "--run-name", "seg", *SEG_TRAIN])
    assert result.exit_code == 0, result.output
    checkpoint = Path(result.stdout.strip().splitlines()[-1])
    assert checkpoint.is_file(), result.stdout
    yield checkpoint, dataset
    shutil.rmtree(root, ignore_errors=True)


def _frames(dataset: Path) -> list[tuple[str, bytes]]:
    from PIL import Image

    frames = []
    for path in sorted(dataset.glob("*/*.jpg"))[:3]:
        with Image.open(path) as img:
            crop = img.convert("RGB").crop((4, 10, 4 + FRAME_SIZE[0], 10 + FRAME_SIZE[1]))
        buf = io.BytesIO()
        crop.save(buf, format="JPEG", quality=95)
        frames.append((f"seg/{path.name}", buf.getvalue()))
    return frames


def _outline_pixels(mask: np.ndarray) -> int:
    """Points of the mask's longest outer contour (a polygon needs 3)."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return max((len(c) for c in contours), default=0)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_segmentation_model_uploads_polygons_traced_from_its_masks(seg_model, tmp_path, monkeypatch):
    from PIL import Image

    from rfdetr_trainer.integrations.rfdetr.inference import load_model

    checkpoint, dataset = seg_model
    frames = _frames(dataset)
    model = load_model(checkpoint)
    names = list(model.class_names)
    assert sorted(names) == sorted(TASK_LABELS) and names != list(TASK_LABELS)
    # rfdetr's own predict on each frame, each detection with an image-size mask; its head has a spare class slot
    # (class id 3), which annotate never predicts. The threshold keeps about 15 trained-class candidates.
    refs = [model.predict(Image.open(io.BytesIO(data)).convert("RGB"), threshold=0.0) for _n, data in frames]
    scores = np.sort(np.concatenate([r.confidence[r.class_id < len(names)] for r in refs]))[::-1]
    conf = float(scores[min(15, len(scores) - 1)])

    state = CvatState()
    task = state.add_task(FakeTask(7, "seg pre-annotation", labels=TASK_LABELS, frames=frames, shapes=[]))
    label_name = {700 + i + 1: n for i, n in enumerate(TASK_LABELS)}
    with CvatServer(state) as server:
        monkeypatch.setenv("CVAT_HOST", server.url)
        monkeypatch.setenv("CVAT_ACCESS_TOKEN", "pat-admin-0123456789")
        monkeypatch.setenv("RFDETR_TRAINER_DATA__CACHE_DIR", str(tmp_path / "cache"))
        result = CliRunner().invoke(app, ["annotate", "--checkpoint", str(checkpoint), "--cvat-task-ids", "7",
                                          "--conf", str(conf), "--output", str(tmp_path / "out"),
                                          "--env-file", os.devnull])
    assert result.exit_code == 0, result.output
    shapes = [s for s in task.shapes if s["source"] == "auto"]
    assert shapes, result.output
    assert f"{len(shapes)} shapes uploaded" in result.stdout
    width, height = FRAME_SIZE
    polygons = 0
    for shape in shapes:
        ref = refs[shape["frame"]]
        # The same detection in rfdetr's output: its score, class name (= the task label's name), and its mask
        # or box. An untrained model scores many candidates alike, so the score alone may name several.
        match = [i for i in range(len(ref)) if abs(float(ref.confidence[i]) - shape["score"]) < 1e-4
                 and int(ref.class_id[i]) < len(names) and names[ref.class_id[i]] == label_name[shape["label_id"]]]
        assert match, (shape, label_name[shape["label_id"]])
        assert all(ref.mask[i].shape == (height, width) for i in match)
        points = shape["points"]
        if shape["type"] == "polygon":
            polygons += 1
            xs, ys = points[0::2], points[1::2]
            assert len(points) >= 6 and len(points) % 2 == 0
            assert all(0 <= x <= width for x in xs) and all(0 <= y <= height for y in ys)
            # vertices lie on the mask's outline
            assert any(all(ref.mask[i][int(y), int(x)] for x, y in zip(xs, ys)) for i in match), shape
        else:  # fallback: a detection whose mask has no outline of 3 points keeps its box
            assert shape["type"] == "rectangle"
            assert any(_outline_pixels(ref.mask[i]) < 3 and np.allclose(points, np.round(ref.xyxy[i], 2), atol=0.02)
                       for i in match), (shape, [ref.xyxy[i] for i in match])
    assert polygons >= 1, shapes
