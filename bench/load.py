"""Load on the local stack: N scans from C concurrent clients, on loopback only.

Starts `pancscan serve` on free ports, sends scans as the page does (create, multipart POST to
the presigned URL, poll), a mix of JPEG slices, DICOM slices and files that must be rejected,
then reports upload-to-result latency (p50, p95), scans lost (no final status), objects left in
the bucket and records stuck in pending/processing. Bounded in count and in time.

    python bench/load.py [--scans 200] [--clients 20] [--deadline 600]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests

from pancscan_local.process import served_stack

REPO = Path(__file__).resolve().parents[1]
BUCKET, TABLE = "pancscan-local-uploads", "pancscan-local-scans"
POLL_S = 0.5  # as the page polls


@dataclass
class Outcome:
    status: str  # a final status, or "lost"
    seconds: float
    scan_id: str | None = None
    error: str | None = None  # why a scan was lost


def payloads(data_dir: Path) -> list[tuple[str, str, bytes]]:
    """(filename, content type, bytes): JPEG slices, DICOM slices, and junk that must be rejected."""
    sys.path.insert(0, str(REPO))
    import numpy as np
    from PIL import Image
    from tests.dicom_factory import ct_dataset, display_to_hu, to_bytes

    files = sorted((data_dir / "images").glob("*.jpg"))[:20]
    items = [("scan.jpg", "image/jpeg", f.read_bytes()) for f in files]
    for f in files[:5]:
        hu = display_to_hu(np.asarray(Image.open(f).convert("L"), np.float32)[::-1])
        items.append(("scan.dcm", "application/dicom", to_bytes(ct_dataset(hu))))
    items.append(("scan.png", "image/png", b"\x89PNG\r\n\x1a\n" + os.urandom(2000)))  # truncated: rejected
    return items


def one_scan(url: str, item: tuple[str, str, bytes], deadline: float) -> Outcome:
    filename, content_type, data = item
    started = time.monotonic()
    session = requests.Session()
    scan = {}
    try:
        scan = session.post(f"{url}/v1/scans", json={"filename": filename, "content_type": content_type, "size": len(data)}, timeout=30).json()
        form = scan["upload"]
        session.post(form["url"], data=form["fields"], files={"file": ("scan", data, content_type)}, timeout=60).raise_for_status()
        while time.monotonic() < deadline:
            status = session.get(f"{url}/v1/scans/{scan['scan_id']}", headers={"X-Scan-Token": scan["result_token"]}, timeout=30).json()["status"]
            if status in ("complete", "rejected", "failed"):
                return Outcome(status, time.monotonic() - started, scan["scan_id"])
            time.sleep(POLL_S)
        error = "no final status before the deadline"
    except (requests.RequestException, KeyError, ValueError) as exc:
        url = getattr(getattr(exc, "request", None), "url", "") or ""
        error = f"{type(exc).__name__} on {url.split('?')[0].rsplit('/', 1)[0]}: {str(exc)[:160]}"
    return Outcome("lost", time.monotonic() - started, scan.get("scan_id"), error)


def run_load(url: str, aws_endpoint: str, items, scans: int, clients: int, deadline_s: float) -> dict:
    deadline = time.monotonic() + deadline_s
    with ThreadPoolExecutor(clients) as pool:
        outcomes = list(pool.map(lambda i: one_scan(url, items[i % len(items)], deadline), range(scans)))
    aws = dict(endpoint_url=aws_endpoint, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
    left = boto3.client("s3", **aws).list_objects_v2(Bucket=BUCKET, Prefix="uploads/").get("KeyCount", 0)  # uploads; a series leaves its slice sheets
    ours = {o.scan_id for o in outcomes if o.scan_id}
    items_in_table = boto3.client("dynamodb", **aws).scan(TableName=TABLE)["Items"]
    stuck = sum(i["scan_id"]["S"] in ours and i["status"]["S"] in ("pending", "processing") for i in items_in_table)
    done = [o.seconds for o in outcomes if o.status != "lost"]
    quantiles = statistics.quantiles(done, n=100, method="inclusive") if len(done) > 1 else [float("nan")] * 99
    return {
        "scans": scans, "clients": clients,
        "by_status": {s: sum(o.status == s for o in outcomes) for s in sorted({o.status for o in outcomes})},
        "lost": sum(o.status == "lost" for o in outcomes), "objects_left": left, "stuck": stuck,
        "p50_s": quantiles[49], "p95_s": quantiles[94],
        "errors": [o.error for o in outcomes if o.error],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "nih-pancreas-ct-slices"))
    parser.add_argument("--scans", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--deadline", type=float, default=600, help="seconds for the whole run")
    args = parser.parse_args()
    items = payloads(Path(args.data))
    with served_stack() as stack:
        started = time.monotonic()
        report = run_load(stack.url, stack.aws_endpoint, items, args.scans, args.clients, args.deadline)
        elapsed = time.monotonic() - started
    print(f"{report['scans']} scans from {report['clients']} concurrent clients in {elapsed:.0f} s "
          f"({report['scans'] / elapsed:.1f} scans/s): {report['by_status']}")
    for error in sorted(set(report["errors"])):
        print(f"  lost: {error} (x{report['errors'].count(error)})")
    print(f"upload-to-result p50 {report['p50_s']:.2f} s, p95 {report['p95_s']:.2f} s")
    print(f"lost {report['lost']} (must be 0), uploads left in the bucket {report['objects_left']} (must be 0), "
          f"records stuck in pending/processing {report['stuck']} (must be 0)")
    return 0 if report["lost"] == report["objects_left"] == report["stuck"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
