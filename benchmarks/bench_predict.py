"""Benchmark prediction throughput: rfdetr's ``predict()`` one image at a time vs ours (PyTorch, ONNX Runtime).

Input: 200 JPEGs of 1280x720 generated here (shapes on noise, seeded), the same files for every contender.
Model: ``--checkpoint`` when given, else RF-DETR Nano built from scratch (offline: no published weights) with
3 classes at its default 384 px. In one process, each contender after a 4-image warm-up:

- anchor: ``model.predict(path, threshold=T)`` for each image, as a user of rfdetr would call it;
- ours, PyTorch: ``integrations.rfdetr.inference.detect`` on the same model, batches of ``--batch-size``,
  JPEG decoding on worker threads while the model runs;
- ours, ONNX Runtime: the same through the model exported to ONNX (dynamic batch; export time not counted),
  CUDA execution provider when available.

The contenders run in interleaved rounds of ``--round`` images (order rotating), so a shared machine's load
changes fall on all of them alike.

Prints images/s side by side, the ratio to the anchor (goal on CPU: best of ours >= 2x), and whether each of ours
found the same detections as rfdetr (same classes, scores within 1e-3, boxes within 1 px). rfdetr's detections of
a spare logit slot (a class the model was not trained on, which ours never emit) are left out of the comparison.
T defaults to a value that gives an untrained model about 10 detections per image.

Usage:
    python benchmarks/bench_predict.py [--images 200] [--batch-size 4] [--checkpoint C] [--threshold T]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        noise = rng.integers(0, 255, size=(720 // 8, 1280 // 8, 3), dtype=np.uint8)
        img = Image.fromarray(noise).resize((1280, 720), Image.BILINEAR)
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(2, 8))):
            x, y = int(rng.integers(0, 1100)), int(rng.integers(0, 560))
            w, h = int(rng.integers(40, 180)), int(rng.integers(40, 160))
            color = tuple(int(c) for c in rng.integers(0, 255, 3))
            (draw.rectangle if rng.random() < 0.5 else draw.ellipse)([x, y, x + w, y + h], fill=color)
        path = folder / f"img_{i:04d}.jpg"
        img.save(path, quality=90)
        paths.append(path)
    return paths


def build_model(checkpoint: str | None):
    from rfdetr_trainer.integrations.rfdetr.trainer import quiet_libraries

    quiet_libraries()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if checkpoint:
            from rfdetr_trainer.integrations.rfdetr.inference import load_model

            return load_model(Path(checkpoint))
        from rfdetr import RFDETRNano

        model = RFDETRNano(pretrain_weights=None, num_classes=3)
        model.model.class_names = ["a", "b", "c"]
        return model


def rfdetr_predict(model, paths, threshold):
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            out.append(model.predict(str(path), threshold=threshold))
    return out


def same(reference, ours, num_classes) -> tuple[int, int]:
    """Images whose detections agree (rfdetr's spare-slot detections left out), and the total."""
    agree = 0
    for det, pred in zip(reference, ours):
        keep = det.class_id < num_classes
        xyxy, scores, labels = det.xyxy[keep], det.confidence[keep], det.class_id[keep]
        if len(scores) != len(pred.scores):
            continue
        order_a, order_b = np.lexsort((labels, -scores)), np.lexsort((pred.labels, -pred.scores))
        if (np.array_equal(labels[order_a], pred.labels[order_b])
                and np.allclose(scores[order_a], pred.scores[order_b], atol=1e-3)
                and np.allclose(xyxy[order_a], pred.boxes_xyxy[order_b], atol=1.0)):
            agree += 1
    return agree, len(reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--checkpoint")
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--round", type=int, default=20, help="images per interleaved round")
    args = parser.parse_args()

    import torch

    from rfdetr_trainer.integrations.rfdetr import export as exporter
    from rfdetr_trainer.integrations.rfdetr.export_meta import stamp
    from rfdetr_trainer.integrations.rfdetr.inference import OnnxBackend, TorchBackend, detect

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {device}, torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp), args.images)
        model = build_model(args.checkpoint)
        ours_torch = TorchBackend(model)
        num_classes = len(ours_torch.class_names)
        threshold = args.threshold
        if threshold is None:
            first = rfdetr_predict(model, paths[:1], 0.0)[0]
            scores = np.sort(first.confidence[first.class_id < num_classes])[::-1]
            threshold = float(scores[min(10, len(scores) - 1)])
        print(f"{len(paths)} images 1280x720, model at {ours_torch.resolution} px, {num_classes} classes, "
              f"threshold {threshold:.4g}, batch size {args.batch_size}")
        start = time.perf_counter()
        onnx_path = exporter.export_onnx(model, Path(tmp), opset=17, dynamic_batch=True, simplify=False, half=False)
        stamp(onnx_path, ours_torch.metadata())
        print(f"(ONNX export: {time.perf_counter() - start:.1f} s, not counted)")
        ours_onnx = OnnxBackend(onnx_path, device="auto")
        print(f"ONNX Runtime providers: {ours_onnx.session.get_providers()}")

        contenders = [
            ("rfdetr model.predict(), one image at a time (anchor)", lambda chunk: rfdetr_predict(model, chunk,
                                                                                                   threshold)),
            ("ours, PyTorch, batched", lambda chunk: detect(ours_torch, chunk, threshold=threshold,
                                                            batch_size=args.batch_size)),
            ("ours, ONNX Runtime, batched", lambda chunk: detect(ours_onnx, chunk, threshold=threshold,
                                                                 batch_size=args.batch_size)),
        ]
        for _, run in contenders:
            run(paths[:4])  # warm-up
        # Interleaved rounds (rotating the order) so that a shared machine's changing load falls on every
        # contender alike; each contender's time is the sum over rounds.
        seconds = [0.0] * len(contenders)
        outputs: list[list] = [[] for _ in contenders]
        chunks = [paths[i:i + args.round] for i in range(0, len(paths), args.round)]
        for r, chunk in enumerate(chunks):
            for k in [(r + j) % len(contenders) for j in range(len(contenders))]:
                start = time.perf_counter()
                outputs[k].extend(contenders[k][1](chunk))
                seconds[k] += time.perf_counter() - start
        anchor = len(paths) / seconds[0]
        rows = [(contenders[0][0], anchor, None)]
        for k in (1, 2):
            rows.append((contenders[k][0], len(paths) / seconds[k], same(outputs[0], outputs[k], num_classes)))
        print(f"{'contender':<56} {'images/s':>9} {'vs anchor':>10} {'same detections':>16}")
        for name, rate, agree in rows:
            match = "-" if agree is None else f"{agree[0]}/{agree[1]}"
            print(f"{name:<56} {rate:>9.2f} {rate / anchor:>9.2f}x {match:>16}")
        best = max(rows[1:], key=lambda r: r[1])
        print(f"best of ours: {best[0]} at {best[1] / anchor:.2f}x the anchor (goal on CPU >= 2x)")


if __name__ == "__main__":
    main()
