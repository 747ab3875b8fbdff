"""The gateway's rules with a fake API and a fake PACS: what settles is submitted once, de-identified
and in series order; results go back into the source study; faults leave everything on disk to be
tried again; logs name no patient."""

import io
import json
import logging
import os
import zipfile

import numpy as np
import pydicom
import pytest

from pancscan_client.gateway import Destination, Gateway, why_ignored
from pancscan_client.submit import ClientRefused
from tests.dicom_factory import PHI, PHI_STRINGS, ct_dataset, to_bytes
from tests.unit.test_secondary_capture import result as capture_result

SETTLE = 10.0


def series(count=4, modality="CT", orientation=(1, 0, 0, 0, 1, 0)) -> list[pydicom.Dataset]:
    """One series of a patient (with identifiers), slice k at z = 2.5 k, in a shuffled arrival order."""
    from pydicom.uid import generate_uid

    uid = generate_uid()
    made = [pydicom.dcmread(io.BytesIO(to_bytes(ct_dataset(np.full((4, 4), 10.0 * k), z=2.5 * k, series_uid=uid, modality=modality,
                                                             orientation=orientation)))) for k in range(count)]
    return made[1::2] + made[0::2]  # not in position order


class FakeApi:
    def __init__(self, outcome="complete", fail_times=0, refuse=False):
        self.outcome, self.fail_times, self.refuse = outcome, fail_times, refuse
        self.zips: list[bytes] = []

    def __call__(self, data: bytes) -> dict:
        if self.refuse:
            raise ClientRefused("the token endpoint refused the client: invalid_client")
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("the API is down")
        self.zips.append(data)
        if self.outcome == "rejected":
            return {"scan_id": "s1", "status": "rejected", "reason": {"code": "not_abdominal_ct", "message": "..."}}
        return capture_result() | {"scan_id": "s1", "series": {"slices": 4, "most_suspicious_slice": 1}}


class FakePacs:
    def __init__(self, down_times=0):
        self.down_times = down_times
        self.stored: list[pydicom.Dataset] = []

    def __call__(self, files) -> None:
        if self.down_times:
            self.down_times -= 1
            raise ConnectionError("the PACS is down")
        self.stored += [pydicom.dcmread(path) for path in files]


def received(gateway: Gateway, datasets, at: float) -> None:
    for ds in datasets:
        gateway.receive(ds)
    for path in (gateway.state / "incoming").rglob("*.dcm"):
        os.utime(path, (at, at))


@pytest.fixture
def world(tmp_path):
    api, pacs = FakeApi(), FakePacs()
    return Gateway(tmp_path / "state", api, pacs, settle_s=SETTLE, retry_s=30), api, pacs


def test_a_settled_series_is_submitted_once_de_identified_in_order_and_its_results_come_back_to_the_study(world, caplog):
    gateway, api, pacs = world
    caplog.set_level(logging.INFO, logger="pancscan.gateway")
    images = series()
    received(gateway, images, at=1000.0)

    gateway.step(now=1000.0 + SETTLE - 1)  # still arriving, perhaps
    assert api.zips == []
    gateway.step(now=1000.0 + SETTLE)

    (sent,) = api.zips
    with zipfile.ZipFile(io.BytesIO(sent)) as archive:
        members = [pydicom.dcmread(io.BytesIO(archive.read(name))) for name in sorted(archive.namelist())]
    assert [float(m.ImagePositionPatient[2]) for m in members] == [0.0, 2.5, 5.0, 7.5]  # inferior to superior
    for secret in PHI_STRINGS:
        assert secret.encode() not in sent
    assert all(m.StudyInstanceUID != images[0].StudyInstanceUID for m in members)

    report, capture = sorted(pacs.stored, key=lambda ds: ds.Modality)[::-1]  # SR, OT
    assert report.Modality == "SR" and capture.Modality == "OT"
    for ds in (report, capture):  # made at the hospital: the original study and patient
        assert ds.StudyInstanceUID == images[0].StudyInstanceUID and ds.PatientID == PHI["PatientID"]
    slice_1 = next(ds for ds in images if float(ds.ImagePositionPatient[2]) == 2.5)  # the most suspicious slice, index 1
    references = report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert [r.ReferencedSOPInstanceUID for r in references] == [slice_1.SOPInstanceUID]
    assert list((gateway.state / "incoming").iterdir()) == [] and list((gateway.state / "outbox").iterdir()) == []
    assert all(secret not in caplog.text for secret in PHI_STRINGS) and images[0].SeriesInstanceUID not in caplog.text


def test_the_same_series_sent_again_is_not_submitted_again(world):
    gateway, api, pacs = world
    images = series()
    received(gateway, images, at=1000.0)
    gateway.step(now=2000.0)
    received(gateway, images, at=3000.0)
    gateway.step(now=4000.0)
    assert len(api.zips) == 1 and len(pacs.stored) == 2


@pytest.mark.parametrize("images, reason", [
    (lambda: series(modality="MR"), "not_ct"),
    (lambda: series(orientation=(0, 1, 0, 0, 0, -1)), "not_axial"),
], ids=["mr", "sagittal"])
def test_a_series_pancscan_does_not_read_is_not_submitted(world, caplog, images, reason):
    gateway, api, pacs = world
    caplog.set_level(logging.INFO, logger="pancscan.gateway")
    received(gateway, images(), at=1000.0)
    gateway.step(now=2000.0)
    assert api.zips == [] and pacs.stored == []
    assert f"ignored ({reason})" in caplog.text
    assert all(secret not in caplog.text for secret in PHI_STRINGS)


def test_a_localizer_or_too_few_slices_is_ignored():
    scout = series()
    for ds in scout:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    assert why_ignored(scout, 1) == "localizer"
    assert why_ignored(series(), 5) == "too_few_slices"
    assert why_ignored(series(), 4) is None


def test_a_rejected_scan_gets_no_report_and_its_reason_in_the_log(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pancscan.gateway")
    api, pacs = FakeApi(outcome="rejected"), FakePacs()
    gateway = Gateway(tmp_path, api, pacs, settle_s=SETTLE)
    received(gateway, series(), at=1000.0)
    gateway.step(now=2000.0)
    assert len(api.zips) == 1 and pacs.stored == []
    assert "rejected (not_abdominal_ct)" in caplog.text


def test_while_the_api_is_down_the_series_is_kept_and_tried_again_with_backoff(tmp_path):
    api, pacs = FakeApi(fail_times=2), FakePacs()
    gateway = Gateway(tmp_path, api, pacs, settle_s=SETTLE, retry_s=30)
    received(gateway, series(), at=1000.0)
    gateway.step(now=1010.0)  # fails: next try at 1040
    gateway.step(now=1039.0)
    assert api.zips == [] and api.fail_times == 1
    gateway.step(now=1040.0)  # fails again: next try 60 s later
    gateway.step(now=1099.0)
    assert api.zips == []
    gateway.step(now=1100.0)
    assert len(api.zips) == 1 and len(pacs.stored) == 2


def test_a_refused_client_stops_the_gateway_and_keeps_the_series(tmp_path):
    gateway = Gateway(tmp_path, FakeApi(refuse=True), FakePacs(), settle_s=SETTLE)
    received(gateway, series(), at=1000.0)
    with pytest.raises(ClientRefused, match="refused the client"):
        gateway.step(now=2000.0)
    assert len(list((tmp_path / "incoming").iterdir())) == 1


def test_results_wait_on_disk_while_the_pacs_is_down_and_survive_a_restart(tmp_path):
    api, pacs = FakeApi(), FakePacs(down_times=1)
    received(first := Gateway(tmp_path, api, pacs, settle_s=SETTLE, retry_s=30), series(), at=1000.0)
    first.step(now=2000.0)
    assert pacs.stored == [] and len(list((tmp_path / "outbox").rglob("*.dcm"))) == 2

    restarted = Gateway(tmp_path, FakeApi(), pacs, settle_s=SETTLE, retry_s=30)  # a new process, the same state
    restarted.step(now=2010.0)  # before the retry time
    assert pacs.stored == []
    restarted.step(now=2030.0)
    assert sorted(ds.Modality for ds in pacs.stored) == ["OT", "SR"] and list((tmp_path / "outbox").iterdir()) == []
    assert len(api.zips) == 1  # submitted once


def test_the_uid_key_survives_a_restart_and_is_kept_private(tmp_path):
    first = Gateway(tmp_path, FakeApi(), FakePacs())
    assert Gateway(tmp_path, FakeApi(), FakePacs()).series_key("1.2.3") == first.series_key("1.2.3")
    assert (tmp_path / "secret").stat().st_mode & 0o077 == 0


def test_a_destination_is_ae_title_at_host_and_port():
    assert Destination.parse("ORTHANC@pacs.example:4242") == Destination("ORTHANC", "pacs.example", 4242)
    with pytest.raises(ValueError):
        Destination.parse("pacs.example:4242")


def test_settled_series_and_results_are_written_as_json_not_pickles(world):
    gateway, _, _ = world
    received(gateway, series(), at=1000.0)
    gateway.step(now=2000.0)
    (record,) = (gateway.state / "done").glob("*.json")
    assert json.loads(record.read_text()) == {"status": "complete", "scan_id": "s1", "reason": None}


def test_a_multipart_answer_is_split_into_its_parts_whatever_their_bytes():
    from pancscan_client.gateway import multipart_parts

    first, second = b"DICM\r\n--not-the-boundary\r\n", b"\x00\x01\r\n\r\nbody"
    body = (b"--b1\r\nContent-Type: application/dicom\r\n\r\n" + first + b"\r\n"
            b"--b1\r\nContent-Type: application/dicom\r\n\r\n" + second + b"\r\n--b1--\r\n")
    assert multipart_parts('multipart/related; type="application/dicom"; boundary=b1', body) == [first, second]
    assert multipart_parts('multipart/related; boundary="b1"', body) == [first, second]
    with pytest.raises(ValueError):
        multipart_parts("multipart/related", body)


def test_credentials_come_from_a_file_or_the_environment_never_the_command_line(tmp_path):
    from pancscan_client.gateway import credentials_from

    file = tmp_path / "client.json"
    file.write_text(json.dumps({"client_id": "id-f", "client_secret": "s-f"}))
    assert credentials_from({}, str(file)) == ("id-f", "s-f")
    assert credentials_from({"PANCSCAN_CLIENT_ID": "id-e", "PANCSCAN_CLIENT_SECRET": "s-e"}, None) == ("id-e", "s-e")
    with pytest.raises(SystemExit, match="PANCSCAN_CLIENT_SECRET"):
        credentials_from({"PANCSCAN_CLIENT_ID": "id-e"}, None)


def test_a_result_that_does_not_come_in_time_is_asked_for_again_later(tmp_path):
    answers = iter([{"scan_id": "s0", "status": "timed_out"}, capture_result() | {"scan_id": "s1", "series": {"most_suspicious_slice": 0}}])
    pacs = FakePacs()
    gateway = Gateway(tmp_path, lambda data: next(answers), pacs, settle_s=SETTLE, retry_s=30)
    received(gateway, series(), at=1000.0)
    gateway.step(now=1010.0)
    assert pacs.stored == [] and len(list((tmp_path / "incoming").iterdir())) == 1
    gateway.step(now=1040.0)
    assert sorted(ds.Modality for ds in pacs.stored) == ["OT", "SR"]
