"""Upload-to-result latency through the local stack (slices, and a 100-slice DICOM series), and
the inference function's cold start and peak memory.

Starts `pancscan serve` on free ports, sends scans one after another exactly as the page does
(create, multipart POST to the presigned URL, poll every 20 ms), after a few warm-up scans.
Baselines measured in this same run: the same slices scored in-process with predict_bytes (what
the pipeline adds is the ratio), and a bare Python start (what the cold start adds).

    python bench/bench_pipeline.py [--scans 50] [--data ../shared/data/nih-pancreas-ct-slices]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from pancscan_local.process import served_stack

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import PEAK_MB  # noqa: E402  (the process's own peak memory, VmHWM)

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "build" / "inference"
COLD_START = PEAK_MB + """
import sys, time; t0 = time.perf_counter()
import app
from pancscan.detection.predict import predict_bytes
predict_bytes(open(sys.argv[1], "rb").read(), app.model)
print(peak_mb())
"""


def one_scan(url: str, data: bytes, filename: str = "s.jpg", content_type: str = "image/jpeg") -> float:
    started = time.perf_counter()
    scan = requests.post(f"{url}/v1/scans", json={"filename": filename, "content_type": content_type, "size": len(data)}).json()
    form = scan["upload"]
    requests.post(form["url"], data=form["fields"], files={"file": ("scan", data, content_type)}).raise_for_status()
    while True:
        status = requests.get(f"{url}/v1/scans/{scan['scan_id']}", headers={"X-Scan-Token": scan["result_token"]}).json()["status"]
        if status not in ("pending", "processing"):
            return time.perf_counter() - started
        time.sleep(0.02)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def series_zip_bytes(files: list[Path], slices: int) -> bytes:
    """A DICOM series of ``slices`` CT slices (the shared slices, cycled) made with pydicom."""
    sys.path.insert(0, str(REPO))
    import numpy as np
    from PIL import Image

    from tests.dicom_factory import display_to_hu, series_zip

    images = [display_to_hu(np.asarray(Image.open(f).convert("L"), np.float32)[::-1]) for f in files]
    return series_zip([images[k % len(images)] for k in range(slices)], shuffle_seed=0)


def pipeline_latency(files: list[Path], scans: int, series: bytes, series_runs: int) -> tuple[list[float], list[float]]:
    with served_stack() as stack:
        data = [f.read_bytes() for f in files]
        for i in range(5):  # warm-up
            one_scan(stack.url, data[i % len(data)])
        slices = [one_scan(stack.url, data[i % len(data)]) for i in range(scans)]
        one_scan(stack.url, series, "scan.zip", "application/zip")  # warm-up
        return slices, [one_scan(stack.url, series, "scan.zip", "application/zip") for _ in range(series_runs)]


def direct_latency(files: list[Path], scans: int) -> list[float]:
    from pancscan.detection.model import load_model
    from pancscan.detection.predict import predict_bytes

    model = load_model()
    data = [f.read_bytes() for f in files]
    predict_bytes(data[0], model)
    times = []
    for i in range(scans):
        started = time.perf_counter()
        predict_bytes(data[i % len(data)], model)
        times.append(time.perf_counter() - started)
    return times


def cold_start(slice_path: Path, repeats: int = 3) -> tuple[float, float, float]:
    """Median seconds to import the inference handler (settings, clients, model) from its image
    folder in a fresh interpreter and score one slice, with that process's peak memory (MB); and
    a bare interpreter's start, for scale."""
    if not (IMAGE / "task" / "app.py").exists():
        sys.exit("build/inference is missing: run `make build-inference` first")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(IMAGE / "task"), "BUCKET_NAME": "b", "TABLE_NAME": "t",
           "AWS_DEFAULT_REGION": "us-east-1", "PANCSCAN_MODEL": str(IMAGE / "opt" / "model" / "pancscan.tflite")}
    handler, bare, peak_mb = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-S", "-c", COLD_START, str(slice_path.resolve())], cwd=IMAGE / "task", env=env,
                             capture_output=True, text=True, check=True)
        handler.append(time.perf_counter() - started)
        peak_mb.append(float(out.stdout.strip().splitlines()[-1]))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-c", "pass"], check=True)
        bare.append(time.perf_counter() - started)
    return statistics.median(handler), statistics.median(bare), max(peak_mb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "nih-pancreas-ct-slices"))
    parser.add_argument("--scans", type=int, default=50)
    parser.add_argument("--series-slices", type=int, default=100)
    parser.add_argument("--series-runs", type=int, default=5)
    args = parser.parse_args()
    # the stack and the in-process baseline use the same interpreter threads (the stack's default)
    os.environ.setdefault("PANCSCAN_THREADS", str(min(os.cpu_count() or 1, 4)))
    files = sorted((Path(args.data) / "images").glob("*.jpg"))[:20]
    series = series_zip_bytes(files, args.series_slices)
    series_path = Path(tempfile.mkdtemp()) / "series.zip"
    series_path.write_bytes(series)

    pipeline, series_times = pipeline_latency(files, args.scans, series, args.series_runs)
    direct = direct_latency(files, args.scans)
    handler_cold, bare, peak_mb = cold_start(files[0])
    _, _, series_peak_mb = cold_start(series_path, repeats=1)
    p50, p95, d50 = percentile(pipeline, 50), percentile(pipeline, 95), percentile(direct, 50)
    print(f"upload-to-result through the local stack, {args.scans} scans, warm: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    print(f"the same slices scored in-process (predict_bytes, {os.environ['PANCSCAN_THREADS']} interpreter threads): p50 {d50 * 1000:.0f} ms")
    print(f"ratio pipeline/in-process p50: {p50 / d50:.1f}x; goal p50 < 1 s: {'met' if p50 < 1 else 'missed'}")
    s50 = statistics.median(series_times)
    per_slice = s50 / args.series_slices
    print(f"{args.series_slices}-slice DICOM series zip ({len(series) / 2**20:.1f} MB), upload to scan-level result, warm, "
          f"median of {args.series_runs}: {s50:.2f} s ({per_slice * 1000:.0f} ms a slice, {per_slice / d50:.2f}x an in-process "
          f"JPEG slice); goal < 3 s: {'met' if s50 < 3 else 'missed'}")
    print(f"inference process peak memory scoring that series from a cold start: {series_peak_mb:.0f} MB; goal < 1 GB: "
          f"{'met' if series_peak_mb < 1024 else 'missed'}")
    print(f"inference function cold start (import, settings, model load, first slice): {handler_cold:.2f} s; "
          f"bare python -S start {bare:.2f} s (ratio {handler_cold / bare:.1f}x); peak memory {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
