"""A whole CT series through `pancscan predict`: time by stage, peak memory, and ratios against
model 0.2.0 (float32, one thread) scoring the same number of slices one at a time, in this run;
and the 300-slice series from upload to result through the local stack (`pancscan serve`: moto's
S3 and DynamoDB, the slice sheets stored), against the `pancscan predict` process of the same run.

The series: shared NIH normal slices, one patient after another, 2 mm apart, as 512x512 DICOM CT
in HU (a zip, members shuffled), 300 and 600 slices. Every path runs in a fresh process.

    python bench/bench_series.py [--data ../shared/data/nih-pancreas-ct-slices] [--repeats 3]

Targets (issue "A real CT series"): the 300-slice process <= 0.21x the baseline; upload to result
on the local stack within 1 s more; 600 slices <= 2x the 300; peak memory <= 1 GB; a single slice
no slower than with model 0.2.0.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import PEAK_MB, PREDICT  # noqa: E402

BASELINE = Path(__file__).resolve().parent / "baseline" / "pancscan-0.2.0.tflite"

# Model 0.2.0 as it scored a series: one slice at a time, one thread, its own float32 .tflite.
BASELINE_CHILD = PEAK_MB + r"""
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
images = np.load(sys.argv[2])
runner = Interpreter(model_path=sys.argv[1], num_threads=1).get_signature_runner()
runner(image=images[:1, ..., None])
started = time.perf_counter()
for image in images:
    runner(image=image[None, ..., None])
print(json.dumps({"seconds": time.perf_counter() - started}))
"""

# The stages of one series, each timed in one process (the whole process is timed apart).
STAGES_CHILD = PEAK_MB + r"""
import json, sys, time
t0 = time.perf_counter()
from pancscan.detection.model import load_model
from pancscan.detection.predict import predict_scan
from pancscan.reading.scan_input import read_scan
from pancscan.service.inference import result_pngs
from pancscan.outputs.slice_sheets import slice_sheets
model = load_model()
meta = model.metadata
data = open(sys.argv[1], "rb").read()
t1 = time.perf_counter()
read_scan(data, (meta.window_center_hu, meta.window_width_hu), meta.input_size, 1e9)  # headers; two slices decoded
t2 = time.perf_counter()
scan = read_scan(data, (meta.window_center_hu, meta.window_width_hu), meta.input_size, meta.series.grid_mm)
t3 = time.perf_counter()
result = predict_scan(scan, model)
t4 = time.perf_counter()
result_pngs(result)
sheets = slice_sheets(result.scored_slices)
t5 = time.perf_counter()
print(json.dumps({"import and load": t1 - t0, "unzip and headers": t2 - t1, "decode sampled slices": t3 - t2 - (t2 - t1),
                  "checks and model": t4 - t3, "heatmaps and slice sheets": t5 - t4, "sampled": len(scan.images),
                  "sheets": len(sheets), "sheets_mb": sum(map(len, sheets.values())) / 2**20, "peak_mb": peak_mb()}))
"""


def series_zip(slices, count: int, spacing_mm: float = 2.0) -> bytes:
    from pydicom.uid import generate_uid

    from pancscan_model.dicom_series import ct_slice, hu_from_slice

    chosen = [slices[k % len(slices)] for k in range(count)]
    uid, hu = generate_uid(), {}
    members = []
    for k, item in enumerate(chosen):
        if item.name not in hu:
            hu[item.name] = hu_from_slice(item.image)
        members.append((f"IM{k:04d}.dcm", ct_slice(hu[item.name], spacing_mm * k, uid, k + 1, thickness_mm=spacing_mm)))
    random.Random(0).shuffle(members)  # file order means nothing
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members:
            archive.writestr(name, content)
    return buffer.getvalue()


def run_json(code: str, *args: str, env: dict | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})})
    return json.loads(done.stdout.strip().splitlines()[-1])


def predict_process(path: Path, env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak MB) of a whole `pancscan predict --json` process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PREDICT, "predict", "--json", str(path)], capture_output=True, text=True,
                          check=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - started
    peak = float(done.stderr.rsplit("peak_mb ", 1)[1].split()[0])
    return seconds, peak


def stack_upload_to_result(path: Path, repeats: int) -> float:
    """Median seconds from create to final result of the series through a warm local stack."""
    from bench_pipeline import one_scan

    from pancscan_local.process import served_stack

    data = path.read_bytes()
    with served_stack() as stack:
        one_scan(stack.url, data, "scan.zip", "application/zip")  # warm-up: the model loaded, caches filled
        return float(np.median([one_scan(stack.url, data, "scan.zip", "application/zip") for _ in range(repeats)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/nih-pancreas-ct-slices"))
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per measurement; medians reported")
    args = parser.parse_args()

    from pancscan.reading.imaging import to_model_input
    from pancscan_model.data import load_nih_slices

    slices = sorted(load_nih_slices(args.data), key=lambda s: (s.patient, s.name))
    median = lambda runs: float(np.median(runs))  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = np.stack([to_model_input(slices[k % len(slices)].image) for k in range(300)])
        np.save(tmp / "images.npy", images)
        baseline = median([run_json(BASELINE_CHILD, str(BASELINE), str(tmp / "images.npy"))["seconds"] for _ in range(args.repeats)])
        runs, stages = {}, {}
        for count in (300, 600):
            path = tmp / f"series-{count}.zip"
            path.write_bytes(series_zip(slices, count))
            measured = [predict_process(path) for _ in range(args.repeats)]
            runs[count] = (median([m[0] for m in measured]), max(m[1] for m in measured))
            stage_runs = [run_json(STAGES_CHILD, str(path)) for _ in range(args.repeats)]
            stages[count] = {key: median([r[key] for r in stage_runs]) for key in stage_runs[0]}
        on_stack = stack_upload_to_result(tmp / "series-300.zip", args.repeats)
        single = Path(args.data) / "images" / f"{slices[0].name}.jpg"
        one_now = median([predict_process(single)[0] for _ in range(args.repeats)])
        one_then = median([predict_process(single, {"PANCSCAN_MODEL": str(BASELINE), "PANCSCAN_THREADS": "1"})[0]
                           for _ in range(args.repeats)])

    print(f"baseline: model 0.2.0, one thread, 300 slices one at a time: {baseline:.2f} s ({1000 * baseline / 300:.1f} ms a slice)")
    for count in (300, 600):
        seconds, peak = runs[count]
        print(f"\n`pancscan predict --json` on a {count}-slice DICOM zip: {seconds:.2f} s = {seconds / baseline:.2f}x the baseline; "
              f"peak memory {peak:.0f} MB; {stages[count]['sampled']:.0f} slices sampled (2.5 mm grid); "
              f"{stages[count]['sheets']:.0f} slice sheets, {stages[count]['sheets_mb']:.1f} MB")
        for key, value in stages[count].items():
            if key not in ("sampled", "sheets", "sheets_mb", "peak_mb"):
                print(f"    {key:26s} {value:6.2f} s")
    print(f"\n300 slices, upload to result through the local stack (warm, sheets stored): {on_stack:.2f} s = the process "
          f"{on_stack - runs[300][0]:+.2f} s (goal <= +1 s)")
    print(f"600 slices / 300 slices: {runs[600][0] / runs[300][0]:.2f}x (target <= 2)")
    print(f"one slice, `pancscan predict`: {one_now:.2f} s now, {one_then:.2f} s with model 0.2.0 on one thread "
          f"({one_now / one_then:.2f}x)")
    print(json.dumps({"baseline_s": baseline, "series": {str(c): {"seconds": runs[c][0], "peak_mb": runs[c][1], "stages": stages[c]}
                                                           for c in runs}, "stack_300_s": on_stack, "single_slice_s": one_now, "single_slice_020_s": one_then}))


if __name__ == "__main__":
    main()
