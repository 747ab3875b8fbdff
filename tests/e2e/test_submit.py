"""`pancscan submit` against the running local stack: a folder of slices, a series and junk."""

import csv
import json

import pydicom

from pancscan_cli.main import main
from tests.dicom_factory import PHI_STRINGS, ct_dataset, display_to_hu, to_bytes


def test_a_folder_is_submitted_concurrently_written_as_jsonl_and_csv_and_a_rerun_resumes(local_stack, nih_dir, nih_slices, tmp_path, capsys):
    scans = tmp_path / "scans"
    (scans / "series_a").mkdir(parents=True)
    for k, item in enumerate(nih_slices[:3]):
        (scans / "series_a" / f"IM{k}").write_bytes(to_bytes(ct_dataset(display_to_hu(item.image), z=2.5 * k, series_uid="1.2.3")))
    for path in sorted((nih_dir / "images").glob("*.jpg"))[:3]:
        (scans / path.name).write_bytes(path.read_bytes())
    (scans / "notes.txt").write_text("not a scan")
    out = tmp_path / "out"
    captures = tmp_path / "sc"
    assert main(["submit", "--api", local_stack.url, "--out", str(out), "--concurrency", "3", "--dicom-sc", str(captures), str(scans)]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert counts == {"skipped_not_a_scan": 1, "already_done": 0, "complete": 4, "dicom_sc_written": 1}
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 4 and {r["status"] for r in records} == {"complete"}
    series = [r for r in records if r["path"].endswith("series_a")]
    assert series[0]["slices"] == 3
    with (out / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4
    # the series' result as a Secondary Capture in its study: header values copied here, locally
    (capture,) = captures.glob("*.dcm")
    source = pydicom.dcmread(scans / "series_a" / "IM0")
    filed = pydicom.dcmread(capture)
    assert capture.stem == series[0]["scan_id"] and filed.StudyInstanceUID == source.StudyInstanceUID
    assert filed.PatientID == source.PatientID and filed.SeriesInstanceUID != source.SeriesInstanceUID
    text = (out / "results.jsonl").read_text() + (out / "results.csv").read_text()
    assert not any(secret in text for secret in PHI_STRINGS)
    # a rerun sends nothing again
    assert main(["submit", "--api", local_stack.url, "--out", str(out), str(scans)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"skipped_not_a_scan": 1, "already_done": 4}
