"""What a larger network costs a slice: the exported model at several widths (the default network's
channels times 1, 1.5, 2, 3) through the runtime on one thread, against width 1 in this same run.

Untrained weights (seeded): the cost of a network does not depend on its weights. Each width runs in
a fresh process pinned to one core; the median of ``--slices`` warm runs per process, then the median
of ``--repeats`` processes. With the slices a 300-slice series scores (240 at 2.5 mm, `make
bench-series`), the model's share of a series at each width.

    python bench/bench_capacity.py [--widths 1 1.5 2 3] [--slices 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import _pinned  # noqa: E402  (pinned to one core where the OS allows)

SERIES_SLICES = 240  # slices a 300-slice series at 2 mm scores (every 2.5 mm)

CHILD = r"""
import json, sys, time
import numpy as np
from pancscan.detection.model import SliceModel
model = SliceModel(sys.argv[1])
images = np.random.default_rng(0).random((8, 256, 256), dtype=np.float32)
model.run(images[0])
times = []
for i in range(int(sys.argv[2])):
    started = time.perf_counter()
    model.run(images[i % len(images)])
    times.append(time.perf_counter() - started)
print(json.dumps({"warm_ms_median": 1000 * float(np.median(times))}))
"""


def export(width: float, folder: Path) -> tuple[Path, int]:
    import tensorflow as tf

    from pancscan.detection.model import SHIPPED_MODEL
    from pancscan_model.export import export_model
    from pancscan_model.network import build_backbone, build_inference_model

    tf.keras.utils.set_random_seed(0)
    backbone = build_backbone(width=width)
    path = export_model(build_inference_model(backbone, batch_size=1), folder / f"width-{width:g}.tflite")
    path.with_suffix(".json").write_text(SHIPPED_MODEL.with_suffix(".json").read_text())
    return path, backbone.count_params()


def warm_ms(path: Path, slices: int) -> float:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1", PANCSCAN_THREADS="1")
    done = subprocess.run(_pinned([sys.executable, "-c", CHILD, str(path), str(slices)]), capture_output=True, text=True,
                          env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["warm_ms_median"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0])
    parser.add_argument("--slices", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import numpy as np

    widths = sorted(set(args.widths) | {1.0})
    with tempfile.TemporaryDirectory() as tmp:
        models = {width: export(width, Path(tmp)) for width in widths}
        # the widths take turns, so that a change in the machine's load reaches all of them alike
        runs = {width: [] for width in widths}
        for _ in range(args.repeats):
            for width in widths:
                runs[width].append(warm_ms(models[width][0], args.slices))
    base = float(np.median(runs[1.0]))
    print(f"{'width':>6s} {'parameters':>11s} {'ms a slice':>11s} {'ratio':>7s} {'a 300-slice series: model s':>28s}")
    results = {}
    for width in widths:
        ms = float(np.median(runs[width]))
        results[f"{width:g}"] = {"parameters": models[width][1], "warm_ms_median": ms, "ratio_to_width_1": ms / base}
        print(f"{width:6g} {models[width][1]:11,d} {ms:11.1f} {ms / base:6.2f}x {ms * SERIES_SLICES / 1000:28.1f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
