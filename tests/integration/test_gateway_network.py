"""The gateway's network ends against a real PACS (Debian's Orthanc): results stored with C-STORE and
STOW-RS, a study fetched with WADO-RS, images received on the gateway's own C-STORE port, and the
errors each end raises when the PACS does not take what it is sent."""

import logging
import threading
import time

import numpy as np
import pydicom
import pytest
import requests
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from pancscan_client.gateway import Destination, Gateway, dicom_sender, dicomweb_sender, dicomweb_study, serve
from pancscan_client.secondary_capture import secondary_capture
from pancscan_client.structured_report import structured_report
from tests.dicom_factory import ct_dataset
from tests.orthanc import free_port, wait_for
from tests.unit.test_secondary_capture import result as complete_result


def result_files(folder, study_uid: str) -> list:
    """A report and a capture for a slice of ``study_uid``, as the gateway writes them to its outbox."""
    source = ct_dataset(np.zeros((4, 4)))
    source.StudyInstanceUID = study_uid
    folder.mkdir()
    files = [folder / "capture.dcm", folder / "report.dcm"]
    secondary_capture(complete_result(), source).save_as(files[0], enforce_file_format=True)
    structured_report(complete_result(), source).save_as(files[1], enforce_file_format=True)
    return files


def stored_in(orthanc, files) -> list[bool]:
    """Whether Orthanc holds each file's SOP instance."""
    found = []
    for path in files:
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        found.append(any(m["Type"] == "Instance" for m in requests.post(f"{orthanc['url']}/tools/lookup", data=uid).json()))
    return found


def test_c_store_puts_every_result_object_into_the_pacs(orthanc, tmp_path):
    files = result_files(tmp_path / "out", generate_uid())
    dicom_sender(Destination("ORTHANC", "127.0.0.1", orthanc["dicom_port"]), "PANCSCAN")(files)
    assert stored_in(orthanc, files) == [True, True]


def test_c_store_to_a_pacs_that_is_not_there_raises_and_stores_nothing(orthanc, tmp_path):
    files = result_files(tmp_path / "out", generate_uid())
    with pytest.raises(ConnectionError, match="^the PACS did not accept the association$"):
        dicom_sender(Destination("ORTHANC", "127.0.0.1", free_port()), "PANCSCAN")(files)
    with pytest.raises(ConnectionError, match="^the PACS did not accept the association$"):  # the PACS is called by its AE title
        dicom_sender(Destination("NOT-ORTHANC", "127.0.0.1", orthanc["dicom_port"]), "PANCSCAN")(files)
    assert stored_in(orthanc, files) == [False, False]


def test_c_store_raises_when_the_pacs_refuses_an_object(tmp_path):
    from pynetdicom import AllStoragePresentationContexts, evt

    files = result_files(tmp_path / "out", generate_uid())
    full = AE(ae_title="FULLPACS")
    full.supported_contexts = AllStoragePresentationContexts
    port = free_port()
    server = full.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda event: 0xA700)])  # out of resources
    try:
        with pytest.raises(ConnectionError, match="^the PACS did not store a result object$"):
            dicom_sender(Destination("FULLPACS", "127.0.0.1", port), "PANCSCAN")(files)
    finally:
        server.shutdown()


def test_stow_rs_puts_every_result_object_into_the_pacs_and_a_refusal_raises(orthanc, tmp_path):
    files = result_files(tmp_path / "out", generate_uid())
    dicomweb_sender(f"{orthanc['url']}/dicom-web/")(files)
    assert stored_in(orthanc, files) == [True, True]
    with pytest.raises(ConnectionError, match="STOW-RS answered 404"):
        dicomweb_sender(f"{orthanc['url']}/no-dicom-web")(files)


def test_wado_rs_returns_every_instance_of_a_study_as_the_pacs_holds_it(orthanc, tmp_path):
    study = generate_uid()
    files = result_files(tmp_path / "out", study)
    dicom_sender(Destination("ORTHANC", "127.0.0.1", orthanc["dicom_port"]), "PANCSCAN")(files)
    fetched = dicomweb_study(f"{orthanc['url']}/dicom-web/", study)
    sent = {str(pydicom.dcmread(path).SOPInstanceUID): pydicom.dcmread(path) for path in files}
    assert sorted(str(ds.SOPInstanceUID) for ds in fetched) == sorted(sent)
    for ds in fetched:
        original = sent[str(ds.SOPInstanceUID)]
        assert ds.Modality == original.Modality and ds.get("PixelData") == original.get("PixelData")
    with pytest.raises(requests.HTTPError):
        dicomweb_study(f"{orthanc['url']}/dicom-web", generate_uid())


def test_the_gateway_keeps_what_arrives_on_its_port_and_stops_when_told(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pancscan.gateway")
    gateway, port, stop = Gateway(tmp_path / "state", settle_s=3600), free_port(), threading.Event()
    listening = threading.Thread(target=serve, args=(gateway, "PANCSCAN", "127.0.0.1", port, stop.is_set, 0.1))
    listening.start()
    try:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        images = [ct_dataset(np.full((4, 4), 40.0), z=2.5 * k, series_uid=generate_uid()) for k in range(2)]
        for image in images:  # one association each, the gateway's loop running in between
            association = wait_for(lambda: (a := ae.associate("127.0.0.1", port, ae_title="PANCSCAN")).is_established and a, 30,
                                   "the gateway's port")
            status = association.send_c_store(image)
            association.release()
            assert status.Status == 0x0000
            time.sleep(0.3)
        kept = sorted((tmp_path / "state" / "incoming").rglob("*.dcm"))
        assert sorted(str(pydicom.dcmread(path).SOPInstanceUID) for path in kept) == sorted(str(i.SOPInstanceUID) for i in images)
        assert listening.is_alive()
        assert f"gateway PANCSCAN listening on 127.0.0.1:{port}" in [entry.getMessage() for entry in caplog.records]
    finally:
        stop.set()
        listening.join(timeout=30)
    assert not listening.is_alive()
    time.sleep(0.2)
    refused = AE(ae_title="MODALITY")
    refused.add_requested_context(CTImageStorage)
    assert not refused.associate("127.0.0.1", port, ae_title="PANCSCAN").is_established  # the port is closed again
