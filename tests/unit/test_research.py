"""Research retention: off unless configured; de-identified entries for every final result; CSV export."""

import csv
import io

import pytest

from pancscan.errors import ScanRejected
from pancscan.service.inference import Retention, process_upload
from pancscan.service.research import CSV_FIELDS, research_entry, write_csv
from pancscan.service.settings import Settings
from tests.fakes import InMemoryResearchStore
from tests.unit.test_inference_process import MAX, CountingScorer, new_world

NOW = 1_800_000_123  # 2027-01-15


def scored(world, scorer, retention):
    table, bucket, key, _ = world
    return process_upload(key, bucket, table, scorer, max_bytes=MAX, now=NOW, retention=retention)


def test_retention_is_off_unless_a_table_is_configured_and_then_needs_a_period():
    base = {"BUCKET_NAME": "b", "TABLE_NAME": "t"}
    assert Settings.from_env(base).research_table == "" and Settings.from_env(base).research_retention_days == 0
    on = Settings.from_env(base | {"RESEARCH_TABLE_NAME": "r", "RESEARCH_RETENTION_DAYS": "365"})
    assert (on.research_table, on.research_retention_days) == ("r", 365)
    with pytest.raises(RuntimeError, match="RESEARCH_RETENTION_DAYS"):
        Settings.from_env(base | {"RESEARCH_TABLE_NAME": "r", "RESEARCH_RETENTION_DAYS": "0"})


def test_each_final_result_is_kept_de_identified_for_the_retention_period():
    world = new_world()
    research = InMemoryResearchStore()
    table, _, _, scan_id = world
    scored(world, CountingScorer(), Retention(research, days=365))
    entry, expires_at = research.kept[scan_id]
    assert expires_at == NOW + 365 * 86400
    assert list(entry) == CSV_FIELDS
    assert entry["scored_on"] == "2027-01-15" and entry["status"] == "complete" and entry["probability"] == 0.2
    # nothing of the record beyond the model's output and the technical allow-list
    record = table.get(scan_id)
    assert record.token_hash not in str(entry)
    assert all(not isinstance(value, (bytes, dict)) and len(str(value)) < 64 for value in entry.values())  # no images


def test_rejected_and_failed_scans_are_kept_with_their_reason():
    world = new_world()
    research = InMemoryResearchStore()
    scored(world, CountingScorer(error=ScanRejected("not_abdominal_ct", "x")), Retention(research, days=30))
    (entry,) = research.entries()
    assert entry["status"] == "rejected" and entry["reason_code"] == "not_abdominal_ct" and entry["probability"] is None


def test_the_export_is_csv_oldest_first():
    technical = {"format": "dicom", "modality": "CT", "slices": 40, "slice_thickness_mm": 2.5, "pixel_spacing_mm": [0.7, 0.7]}
    later = research_entry("b", "complete", {"probability": 0.9, "technical": technical, "series": {"scored_slices": 38, "most_suspicious_slice": 12}},
                           NOW + 86400)
    earlier = research_entry("a", "failed", {"reason": {"code": "upload_missing"}}, NOW)
    out = io.StringIO()
    assert write_csv([later, earlier], out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["scan_id"] for r in rows] == ["a", "b"] and rows[0]["reason_code"] == "upload_missing"
    assert {k: rows[1][k] for k in ("format", "modality", "slices", "slice_thickness_mm", "pixel_spacing_mm", "scored_slices",
                                   "most_suspicious_slice")} == {"format": "dicom", "modality": "CT", "slices": "40", "slice_thickness_mm": "2.5",
                                                                 "pixel_spacing_mm": "0.7 x 0.7", "scored_slices": "38", "most_suspicious_slice": "12"}
