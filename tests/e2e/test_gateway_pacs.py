"""From a real PACS and back: Debian's Orthanc (with its DICOMweb plugin) on ports the system chose,
a CT series sent into it with pynetdicom's storescu, Orthanc routing the study to `pancscan
gateway`, the gateway submitting to the local stack run with --auth, and the structured report and
the secondary capture arriving back in Orthanc in the same study.

A Chromium screenshot of the study in Orthanc's own web interface goes to test-artifacts/.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import pytest
import requests
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from tests.dicom_factory import PHI, PHI_STRINGS, ct_dataset, display_to_hu
from tests.e2e.conftest import RunningStack
from tests.e2e.test_hospital_auth import auth_stack  # noqa: F401 (fixture)
from tests.e2e.test_local_stack import BUCKET, TABLE
from tests.e2e.test_site import ARTIFACTS, CHROMIUM, FLAGS
from tests.orthanc import free_port, wait_for


@contextlib.contextmanager
def running_gateway(orthanc, auth_stack, state: Path, *results_to: str):  # noqa: F811 (the fixture imported above)
    """`pancscan gateway` as a hospital runs it: credentials in its environment, results sent to ``results_to``."""
    env = {**os.environ, "PANCSCAN_CLIENT_ID": auth_stack["client_id"], "PANCSCAN_CLIENT_SECRET": auth_stack["secret"]}
    state.mkdir(parents=True)
    log = (state / "gateway.log").open("w")
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "pancscan"), "gateway", *results_to, "--api", auth_stack["url"],
         "--token-url", auth_stack["token_url"], "--host", "127.0.0.1", "--port", str(port), "--state", str(state / "state"),
         "--settle", "2"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: "listening" in (state / "gateway.log").read_text(), 60, "the gateway")
        yield {"log": state / "gateway.log", "state": state / "state", "port": port}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def series_into_the_pacs(orthanc, nih_slices, folder: Path) -> tuple[str, str, int]:
    """A patient's CT series, identifiers in every header, sent into Orthanc with pynetdicom's storescu:
    its Study Instance UID, Orthanc's id of the study, and the number of images."""
    patient = nih_slices[0].patient
    slices = [s for s in nih_slices if s.patient == patient][:6]
    study, series = generate_uid(), generate_uid()
    folder.mkdir()
    for k, item in enumerate(slices):
        ds = ct_dataset(display_to_hu(item.image), z=2.5 * k, series_uid=series)
        ds.StudyInstanceUID, ds.InstanceNumber = study, k + 1
        ds.save_as(folder / f"IM{k:04d}.dcm", enforce_file_format=True)
    sent = subprocess.run([sys.executable, "-m", "pynetdicom", "storescu", "127.0.0.1", str(orthanc["dicom_port"]), str(folder),
                           "-aec", "ORTHANC", "-aet", "MODALITY", "-r"], capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stderr
    (study_id,) = [m["ID"] for m in requests.post(f"{orthanc['url']}/tools/lookup", data=study).json() if m["Type"] == "Study"]
    assert len(requests.get(f"{orthanc['url']}/studies/{study_id}/instances").json()) == len(slices)
    return study, study_id, len(slices)


def results_in_the_study(orthanc, study_id: str, images: int) -> list[dict]:
    url = orthanc["url"]
    return wait_for(lambda: (found := requests.get(f"{url}/studies/{study_id}/instances").json()) and
                    len(found) == images + 2 and found, 180, "the report and the capture in Orthanc")


def test_a_ct_series_goes_from_the_pacs_to_pancscan_and_its_report_comes_back_into_the_study(
        orthanc, auth_stack, nih_slices, tmp_path):  # noqa: F811
    url = orthanc["url"]
    with running_gateway(orthanc, auth_stack, tmp_path / "gateway", "--pacs", f"ORTHANC@127.0.0.1:{orthanc['dicom_port']}") as gateway:
        requests.put(f"{url}/modalities/pancscan", json={"AET": "PANCSCAN", "Host": "127.0.0.1", "Port": gateway["port"]}).raise_for_status()
        study, study_id, images = series_into_the_pacs(orthanc, nih_slices, tmp_path / "series")
        routed = requests.post(f"{url}/modalities/pancscan/store", data=study_id, timeout=120)  # the PACS routes the study
        assert routed.ok, routed.text
        instances = results_in_the_study(orthanc, study_id, images)
        gateway_log = gateway["log"].read_text()
        (record,) = [json.loads(p.read_text()) for p in (gateway["state"] / "done").glob("*.json")]

    # QIDO-RS: the two new series in the same study
    qido = requests.get(f"{url}/dicom-web/studies/{study}/series", headers={"Accept": "application/dicom+json"}).json()
    assert sorted(entry["00080060"]["Value"][0] for entry in qido) == ["CT", "OT", "SR"]

    report_id = next(i["ID"] for i in instances if requests.get(f"{url}/instances/{i['ID']}/simplified-tags").json()["Modality"] == "SR")
    (tmp_path / "report.dcm").write_bytes(requests.get(f"{url}/instances/{report_id}/file").content)
    report = hd.sr.srread(tmp_path / "report.dcm")
    assert report.StudyInstanceUID == study and report.PatientID == PHI["PatientID"]  # the original study, made at the hospital
    (group,) = report.content.get_image_measurement_groups()
    probability = {m.name: m.value for m in group.get_measurements()}[codes.DCM.ProbabilityOfCancer]

    # the same result as the API holds for the scan the gateway submitted
    token = requests.post(auth_stack["token_url"], data={"grant_type": "client_credentials"},
                          auth=(auth_stack["client_id"], auth_stack["secret"])).json()["access_token"]
    api = requests.get(f"{auth_stack['url']}/v1/scans/{record['scan_id']}", headers={"Authorization": f"Bearer {token}"}).json()
    assert api["status"] == "complete" and probability == pytest.approx(api["probability"])

    # nothing of the patient reached PancScan: its log, table and bucket; nor the gateway's log
    stack = RunningStack(auth_stack["url"], auth_stack["aws"], Path(auth_stack["log"]))
    stored = str(stack.client("dynamodb").scan(TableName=TABLE)["Items"]) + "".join(
        stack.client("s3").get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read().decode("latin-1")
        for o in stack.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", []))
    text = stack.log_about(record["scan_id"]) + stored
    assert all(secret not in text for secret in PHI_STRINGS) and study not in text
    assert all(secret not in gateway_log for secret in PHI_STRINGS) and study not in gateway_log

    screenshot(f"{url}/app/explorer.html#study?uuid={study_id}")


def test_a_study_pulled_with_dicomweb_gets_its_results_back_with_stow_rs(orthanc, auth_stack, nih_slices, tmp_path):  # noqa: F811
    url = orthanc["url"]
    with running_gateway(orthanc, auth_stack, tmp_path / "gateway", "--pacs-dicomweb", f"{url}/dicom-web") as gateway:
        study, study_id, images = series_into_the_pacs(orthanc, nih_slices, tmp_path / "series")
        pulled = subprocess.run([str(Path(sys.executable).parent / "pancscan"), "gateway-pull", "--dicomweb", f"{url}/dicom-web",
                                 "--study", study, "--state", str(gateway["state"])], capture_output=True, text=True, timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        assert f"{images} instances received" in pulled.stderr
        results_in_the_study(orthanc, study_id, images)
    qido = requests.get(f"{url}/dicom-web/studies/{study}/series", headers={"Accept": "application/dicom+json"}).json()
    assert sorted(entry["00080060"]["Value"][0] for entry in qido) == ["CT", "OT", "SR"]


def screenshot(page_url: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_url)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(ARTIFACTS / "orthanc-study-with-pancscan-results.png"), full_page=True)
        browser.close()
