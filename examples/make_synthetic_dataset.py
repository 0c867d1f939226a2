"""Write a small synthetic detection dataset (real JPEGs with shapes, COCO boxes and polygons).

    python examples/make_synthetic_dataset.py demo/data --num-images 48 --layout rfdetr
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rfdetr_trainer.synthetic import make_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--num-images", type=int, default=48)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=["rfdetr", "cvat"], default="rfdetr")
    parser.add_argument("--classes", nargs="+", default=None, help="class names (square, triangle, circle)")
    parser.add_argument("--max-objects", type=int, default=3, help="at most this many shapes per image")
    parser.add_argument("--object-size", type=float, nargs=2, default=(0.08, 0.2), metavar=("MIN", "MAX"),
                        help="a shape's half-size as a fraction of the image")
    args = parser.parse_args()
    if args.output_dir.exists():
        shutil.rmtree(args.output_dir)  # the demo's own folder: regenerate it whole
    extra = {"classes": tuple(args.classes)} if args.classes else {}
    make_dataset(args.output_dir, num_images=args.num_images, image_size=args.image_size, seed=args.seed,
                 layout=args.layout, max_objects=args.max_objects, object_size=tuple(args.object_size), **extra)
    print(args.output_dir)


if __name__ == "__main__":
    main()
