"""Results kept for research (ResearchRetentionDays > 0; off by default), de-identified, and their CSV export.

An entry keeps the model's output and the scan's technical allow-list only: no images (not the
heatmap, not the slice), no token hash, no owner, no times finer than the day it was scored. The
scan id is the only link back, and only the submitter (who holds its results file) can follow it:
what a longitudinal study needs, pseudonymised at the hospital.
"""

from __future__ import annotations

import csv
import time
from typing import IO, Iterable, Protocol

CSV_FIELDS = ["scan_id", "scored_on", "status", "label", "probability", "confidence", "threshold", "model_version",
              "reason_code", "format", "modality", "slices", "slice_thickness_mm", "pixel_spacing_mm",
              "scored_slices", "most_suspicious_slice"]


class ResearchStore(Protocol):
    def keep(self, entry: dict, expires_at: int) -> None: ...
    def forget(self, scan_id: str) -> None:
        """When its scan is deleted on request: the research copy goes too."""
    def entries(self) -> Iterable[dict]: ...


def research_entry(scan_id: str, status: str, result: dict, now: int) -> dict:
    """The de-identified row of one final result (``result`` as the scans table keeps it)."""
    technical = result.get("technical") or {}
    series = result.get("series") or {}
    entry = {
        "scan_id": scan_id,
        "scored_on": time.strftime("%Y-%m-%d", time.gmtime(now)),
        "status": status,
        "label": result.get("label"),
        "probability": result.get("probability"),
        "confidence": result.get("confidence"),
        "threshold": result.get("threshold"),
        "model_version": result.get("model_version"),
        "reason_code": (result.get("reason") or {}).get("code"),
        "format": technical.get("format"),
        "modality": technical.get("modality"),
        "slices": technical.get("slices"),
        "slice_thickness_mm": technical.get("slice_thickness_mm"),
        "pixel_spacing_mm": " x ".join(str(v) for v in technical["pixel_spacing_mm"]) if technical.get("pixel_spacing_mm") else None,
        "scored_slices": series.get("scored_slices"),
        "most_suspicious_slice": series.get("most_suspicious_slice"),
    }
    assert list(entry) == CSV_FIELDS
    return entry


def write_csv(entries: Iterable[dict], out: IO[str]) -> int:
    """The entries as CSV, oldest first; how many were written."""
    rows = sorted(entries, key=lambda e: (e["scored_on"], e["scan_id"]))
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return len(rows)
