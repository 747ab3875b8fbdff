"""Cold start and warm latency of the exported .tflite path against the same model in TensorFlow/Keras,
and a whole `pancscan predict` process against a process that only imports TensorFlow.

Each path runs in a fresh subprocess (so import and load costs are real), pinned to one core where
the OS allows. Prints figures and the ratios measured in this same run.

    python bench/bench_model.py [--slices 100] [--data ../shared/data/nih-pancreas-ct-slices]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

# The high-water mark of this process's own memory. Not ru_maxrss: a child started from a large
# parent inherits the parent's size there at exec, so it would report the parent's memory.
PEAK_MB = r"""
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

CHILD = PEAK_MB + r"""
import json, os, sys, time
t0 = time.perf_counter()
import numpy as np
mode, n, images_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
images = np.load(images_path)
if mode == "tflite":
    from pancscan.detection.model import load_model
    model = load_model()
    t_loaded = time.perf_counter()
    run = lambda x: model.run(x)
else:
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from pancscan.detection.model import SHIPPED_MODEL
    from pancscan_model.network import build_backbone, build_inference_model
    backbone = build_backbone()
    backbone.load_weights(SHIPPED_MODEL.with_suffix(".weights.h5"))
    keras_model = build_inference_model(backbone, batch_size=1)
    t_loaded = time.perf_counter()
    run = lambda x: keras_model(x[None, ..., None], training=False)
run(images[0])
t_first = time.perf_counter()
times = []
for i in range(n):
    s = time.perf_counter()
    run(images[i % len(images)])
    times.append(time.perf_counter() - s)
print(json.dumps({
    "import_and_load_s": t_loaded - t0, "cold_start_s": t_first - t0,
    "warm_ms_median": 1000 * float(np.median(times)), "warm_ms_p95": 1000 * float(np.percentile(times, 95)),
    "peak_rss_mb": peak_mb(),
}))
"""


def measure(mode: str, n: int, images_path: Path) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1", PANCSCAN_THREADS="1")  # one core, one thread
    done = subprocess.run(_pinned([sys.executable, "-c", CHILD, mode, str(n), str(images_path)]), capture_output=True,
                          text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _pinned(command: list[str]) -> list[str]:
    return ["taskset", "-c", "0", *command] if hasattr(os, "sched_setaffinity") and _has_taskset() else command


# `pancscan predict` as its console script runs it, printing its peak memory to stderr at exit
PREDICT = PEAK_MB + r"""
import atexit, sys
atexit.register(lambda: print(f"peak_mb {peak_mb()}", file=sys.stderr))
from pancscan_cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def process_seconds_and_peak_mb(command: list[str]) -> tuple[float, float]:
    """Wall time of a whole process, and the peak memory it prints (0 if it prints none)."""
    import re
    import time

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1", PANCSCAN_THREADS="1")
    started = time.perf_counter()
    done = subprocess.run(_pinned(command), capture_output=True, text=True, env=env, check=True)
    seconds = time.perf_counter() - started
    found = re.search(r"peak_mb ([0-9.]+)", done.stderr)
    return seconds, float(found.group(1)) if found else 0.0


def _has_taskset() -> bool:
    return subprocess.run(["sh", "-c", "command -v taskset"], capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/nih-pancreas-ct-slices"))
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per path; the median is reported")
    args = parser.parse_args()

    import tempfile

    import numpy as np

    from pancscan.reading.imaging import to_model_input
    from pancscan_model.data import load_nih_slices

    slices = load_nih_slices(args.data)[:20]
    images = np.stack([to_model_input(s.image) for s in slices])
    slice_file = Path(args.data) / "images" / f"{slices[0].name}.jpg"
    predict = [sys.executable, "-c", PREDICT, "predict", "--json", str(slice_file)]
    predict_runs = [process_seconds_and_peak_mb(predict) for _ in range(args.repeats)]
    tf_seconds = float(np.median([process_seconds_and_peak_mb([sys.executable, "-c", "import tensorflow"])[0]
                                  for _ in range(args.repeats)]))
    predict_seconds, predict_peak_mb = float(np.median([r[0] for r in predict_runs])), max(r[1] for r in predict_runs)
    with tempfile.TemporaryDirectory() as tmp:
        images_path = Path(tmp) / "images.npy"
        np.save(images_path, images)
        results = {}
        for mode in ("tflite", "keras"):
            runs = [measure(mode, args.slices, images_path) for _ in range(args.repeats)]
            results[mode] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    print(f"{'':22s} {'TFLite (LiteRT)':>16s} {'TensorFlow/Keras':>17s} {'Keras/TFLite':>13s}")
    for key, label in [("cold_start_s", "cold start (s)"), ("import_and_load_s", "import + load (s)"),
                       ("warm_ms_median", "warm median (ms)"), ("warm_ms_p95", "warm p95 (ms)"),
                       ("peak_rss_mb", "peak memory (MB)")]:
        lite, keras = results["tflite"][key], results["keras"][key]
        print(f"{label:22s} {lite:16.3f} {keras:17.3f} {keras / lite:12.1f}x")
    print(f"\n`pancscan predict` on one slice: {predict_seconds:.2f} s, peak memory {predict_peak_mb:.0f} MB; "
          f"`import tensorflow` alone: {tf_seconds:.2f} s; ratio {predict_seconds / tf_seconds:.2f}x")
    results["predict_process"] = {"seconds": predict_seconds, "peak_mb": predict_peak_mb, "import_tensorflow_seconds": tf_seconds,
                                  "ratio_to_import_tensorflow": predict_seconds / tf_seconds}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
