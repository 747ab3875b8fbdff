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
    assert len((tmp_path / "secret").read_bytes()) == 32  # 256 bits, HMAC-SHA-256's own size


def test_a_destination_is_ae_title_at_host_and_port():
    assert Destination.parse("ORTHANC@pacs.example:4242") == Destination("ORTHANC", "pacs.example", 4242)
    assert Destination.parse("CT@ROOM-2@10.0.0.7:104") == Destination("CT@ROOM-2", "10.0.0.7", 104)  # "@" is allowed in AE titles
    assert Destination.parse("ORTHANC@::1:4242") == Destination("ORTHANC", "::1", 4242)  # an IPv6 host


@pytest.mark.parametrize("text", ["pacs.example:4242", "@pacs.example:4242", "ORTHANC@:4242", "ORTHANC@pacs.example",
                                  "ORTHANC@pacs.example:port"])
def test_a_destination_without_its_ae_title_host_or_port_number_is_refused_with_the_form(text):
    with pytest.raises(ValueError) as refused:
        Destination.parse(text)
    assert str(refused.value) == "a DICOM destination is AE_TITLE@HOST:PORT"


def test_each_series_waits_in_its_own_folder(world):
    gateway, _, _ = world
    first, second = series(2), series(3)
    received(gateway, first + second, at=1000.0)
    assert sorted(len(list(folder.glob("*.dcm"))) for folder in (gateway.state / "incoming").iterdir()) == [2, 3]


def test_the_series_goes_to_pancscan_compressed(world):
    gateway, api, _ = world
    received(gateway, series(), at=1000.0)
    gateway.step(now=2000.0)
    with zipfile.ZipFile(io.BytesIO(api.zips[0])) as archive:
        assert {member.compress_type for member in archive.infolist()} == {zipfile.ZIP_DEFLATED}


def test_a_result_that_names_no_slice_refers_to_the_first_slice_of_the_series(tmp_path):
    pacs = FakePacs()
    gateway = Gateway(tmp_path, lambda data: capture_result() | {"scan_id": "s1", "series": None}, pacs, settle_s=SETTLE)
    images = series()
    received(gateway, images, at=1000.0)
    gateway.step(now=2000.0)
    (report,) = [ds for ds in pacs.stored if ds.Modality == "SR"]
    lowest = min(images, key=lambda ds: float(ds.ImagePositionPatient[2]))
    references = report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert [r.ReferencedSOPInstanceUID for r in references] == [lowest.SOPInstanceUID]


def test_a_gateway_stopped_while_writing_results_writes_them_again_after_a_restart(world):
    gateway, api, pacs = world
    images = series()
    received(gateway, images, at=1000.0)
    key = next((gateway.state / "incoming").iterdir()).name
    (gateway.state / "outbox" / key).mkdir()  # what a stop between writing the outbox and recording the series leaves
    gateway.step(now=2000.0)
    assert len(api.zips) == 1 and sorted(ds.Modality for ds in pacs.stored) == ["OT", "SR"]


def test_deliveries_and_failed_deliveries_are_logged_by_series_and_error_kind(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pancscan.gateway")
    gateway = Gateway(tmp_path, FakeApi(), FakePacs(down_times=1), settle_s=SETTLE, retry_s=30)
    received(gateway, series(), at=1000.0)
    key = next((tmp_path / "incoming").iterdir()).name
    gateway.step(now=2000.0)
    gateway.step(now=2030.0)
    messages = [entry.getMessage() for entry in caplog.records]
    assert f"series {key}: results not delivered (ConnectionError); kept, tried again later" in messages
    assert f"series {key}: 2 result objects delivered to the PACS" in messages


def test_the_api_submitter_sends_the_zip_as_one_upload_and_polls_at_its_pace():
    from pancscan_client.gateway import api_submitter

    class Client:
        def submit(self, scan, poll_s):
            self.sent = (scan, poll_s)
            return {"status": "complete"}

    client = Client()
    assert api_submitter(client, poll_s=0.5)(b"PK-zip") == {"status": "complete"}
    scan, poll_s = client.sent
    assert (scan.data, scan.filename, scan.content_type, poll_s) == (b"PK-zip", "scan.zip", "application/zip", 0.5)
    api_submitter(client)(b"PK-zip")
    assert client.sent[1] == 2.0  # by default, a poll every two seconds


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
    with pytest.raises(ValueError, match="^a multipart answer without a boundary$"):
        multipart_parts("multipart/related", body)
    sloppy = b"--b1\r\n\r\n" + second + b"--b1--"  # no line break before the boundary: nothing is cut
    assert multipart_parts("multipart/related; boundary=b1", sloppy) == [second]


def test_the_gateway_says_what_became_of_each_series_by_its_key_alone(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pancscan.gateway")
    answers = iter([ConnectionError("down"), {"scan_id": "s0", "status": "timed_out"},
                    {"scan_id": "s1", "status": "rejected", "reason": {"code": "not_abdominal_ct", "message": "..."}},
                    capture_result() | {"scan_id": "s2", "series": {"most_suspicious_slice": 0}}])

    def submit(data):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    gateway = Gateway(tmp_path, submit, FakePacs(), settle_s=SETTLE, retry_s=30)
    rejected, complete, mr = series(), series(), series(modality="MR")
    received(gateway, rejected, at=1000.0)
    [key] = [folder.name for folder in (tmp_path / "incoming").iterdir()]
    for now in (2000.0, 2030.0, 2090.0):  # down, not in time, rejected
        gateway.step(now=now)
    received(gateway, complete, at=3000.0)
    [complete_key] = [folder.name for folder in (tmp_path / "incoming").iterdir()]
    gateway.step(now=4000.0)
    received(gateway, mr, at=5000.0)
    [mr_key] = [folder.name for folder in (tmp_path / "incoming").iterdir()]
    gateway.step(now=6000.0)
    received(gateway, complete, at=7000.0)  # the same series once more
    gateway.step(now=8000.0)
    assert [entry.getMessage() for entry in caplog.records if entry.name == "pancscan.gateway"] == [
        f"series {key}: not submitted (ConnectionError); kept, tried again later",
        f"series {key}: no result in time; kept, tried again later",
        f"series {key}: rejected (not_abdominal_ct)",
        f"series {complete_key}: complete",
        f"series {complete_key}: 2 result objects delivered to the PACS",
        f"series {mr_key}: ignored (not_ct)",
        f"series {complete_key}: already submitted; the images sent again are dropped"]
    done = {path.stem: json.loads(path.read_text()) for path in (tmp_path / "done").glob("*.json")}
    assert done == {key: {"status": "rejected", "scan_id": "s1", "reason": "not_abdominal_ct"},
                    complete_key: {"status": "complete", "scan_id": "s2", "reason": None},
                    mr_key: {"status": "ignored", "reason": "not_ct"}}


def test_by_default_a_series_settles_after_10_s_one_slice_is_enough_and_retries_start_at_30_s(tmp_path):
    tries = []

    def submit(data):
        tries.append(data)
        if len(tries) == 1:
            raise ConnectionError("the API is down")
        return capture_result() | {"scan_id": "s1", "series": {"most_suspicious_slice": 0}}

    gateway = Gateway(tmp_path, submit, FakePacs())
    received(gateway, series(1), at=1000.0)
    gateway.step(now=1009.9)
    assert tries == []  # not settled yet
    gateway.step(now=1010.0)  # settled: the API is down, next try at 1040
    gateway.step(now=1039.9)
    assert len(tries) == 1
    gateway.step(now=1040.0)
    assert len(tries) == 2 and list((tmp_path / "done").glob("*.json"))


def test_credentials_come_from_a_file_or_the_environment_never_the_command_line(tmp_path):
    from pancscan_client.gateway import credentials_from

    file = tmp_path / "client.json"
    file.write_text(json.dumps({"client_id": "id-f", "client_secret": "s-f"}))
    assert credentials_from({}, str(file)) == ("id-f", "s-f")
    assert credentials_from({"PANCSCAN_CLIENT_ID": "id-e", "PANCSCAN_CLIENT_SECRET": "s-e"}, None) == ("id-e", "s-e")
    with pytest.raises(SystemExit) as missing:
        credentials_from({"PANCSCAN_CLIENT_ID": "id-e"}, None)
    assert str(missing.value) == "pancscan gateway: set PANCSCAN_CLIENT_ID and PANCSCAN_CLIENT_SECRET, or give --credentials FILE"


def test_a_result_that_does_not_come_in_time_is_asked_for_again_later(tmp_path):
    answers = iter([{"scan_id": "s0", "status": "timed_out"}, capture_result() | {"scan_id": "s1", "series": {"most_suspicious_slice": 0}}])
    pacs = FakePacs()
    gateway = Gateway(tmp_path, lambda data: next(answers), pacs, settle_s=SETTLE, retry_s=30)
    received(gateway, series(), at=1000.0)
    gateway.step(now=1010.0)
    assert pacs.stored == [] and len(list((tmp_path / "incoming").iterdir())) == 1
    gateway.step(now=1040.0)
    assert sorted(ds.Modality for ds in pacs.stored) == ["OT", "SR"]


class RecordingDicomWeb:
    """An HTTP server that records one request and answers with ``status``, ``body`` and ``media_type``."""

    def __init__(self, status: int, body: bytes = b"", media_type: str = "application/dicom+json"):
        import http.server
        import threading

        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                recorder.request = (self.path, self.headers, self.rfile.read(int(self.headers["Content-Length"])))  # names: any case
                self.answer()

            def do_GET(self):
                recorder.request = (self.path, self.headers, b"")
                self.answer()

            def answer(self):
                self.send_response(status)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.root = f"http://127.0.0.1:{self.server.server_port}/dicom-webX/"  # ends in X: only the slash is cut

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


def test_stow_rs_sends_each_file_as_a_part_of_one_multipart_related_request(tmp_path):
    from pancscan_client.gateway import dicomweb_sender, multipart_parts

    files = [tmp_path / "report.dcm", tmp_path / "capture.dcm"]
    files[0].write_bytes(b"DICM report\r\n--not a boundary")
    files[1].write_bytes(b"DICM capture")
    with RecordingDicomWeb(200, b'{"00081199": {"vr": "SQ", "Value": [{}, {}]}}') as pacs:
        dicomweb_sender(pacs.root)(files)
    path, headers, body = pacs.request
    assert path == "/dicom-webX/studies" and headers["Accept"] == "application/dicom+json"
    media_type, boundary = headers["Content-Type"].split("; boundary=")
    assert media_type == 'multipart/related; type="application/dicom"' and len(boundary) == 32
    assert multipart_parts(headers["Content-Type"], body) == [files[0].read_bytes(), files[1].read_bytes()]
    assert body.count(b"Content-Type: application/dicom\r\n\r\n") == 2 and body.endswith(f"--{boundary}--\r\n".encode())


@pytest.mark.parametrize("status, body", [(200, b'{"00081198": {"vr": "SQ", "Value": [{"00081197": {"vr": "US", "Value": [272]}}]}}'),
                                          (409, b""), (500, b"")], ids=["a-failed-instance", "conflict", "server-error"])
def test_stow_rs_raises_unless_every_file_was_stored(tmp_path, status, body):
    from pancscan_client.gateway import dicomweb_sender

    (tmp_path / "report.dcm").write_bytes(b"DICM")
    with RecordingDicomWeb(status, body) as pacs, pytest.raises(ConnectionError, match=f"STOW-RS answered {status}"):
        dicomweb_sender(pacs.root)([tmp_path / "report.dcm"])


def test_stow_rs_stores_quietly_when_the_server_answers_without_a_body(tmp_path):
    from pancscan_client.gateway import dicomweb_sender

    (tmp_path / "report.dcm").write_bytes(b"DICM")
    with RecordingDicomWeb(200) as pacs:
        dicomweb_sender(pacs.root.rstrip("/"))([tmp_path / "report.dcm"])
    assert pacs.request[0] == "/dicom-webX/studies"


def test_wado_rs_asks_for_the_studys_instances_as_dicom_parts():
    from pancscan_client.gateway import dicomweb_study

    instances = [to_bytes(ds) for ds in series(2)]
    body = b"".join(b"--b7\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n" for data in instances) + b"--b7--\r\n"
    with RecordingDicomWeb(200, body, 'multipart/related; type="application/dicom"; boundary=b7') as pacs:
        fetched = dicomweb_study(pacs.root, "1.2.3")
    path, headers, _ = pacs.request
    assert (path, headers["Accept"]) == ("/dicom-webX/studies/1.2.3", 'multipart/related; type="application/dicom"')
    assert [ds.SOPInstanceUID for ds in fetched] == [pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID for data in instances]


def test_every_dicomweb_call_has_a_time_limit(tmp_path, monkeypatch):
    # a PACS that stops answering must not hold the gateway for ever
    import requests

    from pancscan_client import gateway

    limits = []

    def recorded(*args, timeout=None, **kwargs):
        limits.append(timeout)
        raise requests.Timeout("no answer")

    monkeypatch.setattr(gateway.requests, "post", recorded)
    monkeypatch.setattr(gateway.requests, "get", recorded)
    (tmp_path / "report.dcm").write_bytes(b"DICM")
    with pytest.raises(requests.Timeout):
        gateway.dicomweb_sender("http://pacs/dicom-web")([tmp_path / "report.dcm"])
    with pytest.raises(requests.Timeout):
        gateway.dicomweb_study("http://pacs/dicom-web", "1.2.3")
    assert limits == [120, 600]
