"""Print what ``make demo`` reached: the test split's mAP50 at the default threshold and the training time.

    python examples/demo_report.py demo/runs/demo/run_manifest.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOAL = 0.5


def main() -> None:
    manifest = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    stages = manifest["stages"]
    predicted = stages["predict"]
    map50 = float(predicted.get("metrics", {}).get("mAP50", 0.0))
    train = stages["train"]
    verdict = "reached" if map50 >= GOAL else "NOT reached"
    print(f"demo: mAP50 {map50:.3f} on the {predicted.get('split', 'test')} split at confidence "
          f"{manifest['config']['validation']['confidence_threshold']} (goal >= {GOAL}: {verdict}); "
          f"{train.get('epochs_completed', '?')} epochs in {float(train.get('duration_s', 0)):.0f} s")
    print(f"demo: prediction grid {manifest['artifacts'].get('prediction_grid', '-')}")


if __name__ == "__main__":
    main()
