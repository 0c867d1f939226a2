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
    args = parser.parse_args()
    if args.output_dir.exists():
        shutil.rmtree(args.output_dir)  # the demo's own folder: regenerate it whole
    make_dataset(args.output_dir, num_images=args.num_images, image_size=args.image_size, seed=args.seed,
                 layout=args.layout)
    print(args.output_dir)


if __name__ == "__main__":
    main()
