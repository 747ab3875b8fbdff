"""The page in a real headless Chromium (Debian's), driven by Playwright, against the local stack."""

import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


def test_uploading_a_slice_through_the_page_shows_the_result(browser, local_stack, nih_dir):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(local_stack.url + "/")
    page.set_input_files("#file", str(sorted((nih_dir / "images").glob("*.jpg"))[5]))
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    label = page.inner_text("#result-label")
    assert label in ("Cancer detected", "No cancer detected")
    assert page.inner_text("#probability").endswith("%") and page.inner_text("#model-version")
    assert "Research software, not a diagnosis" in page.inner_text("header")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "site-result.png"), full_page=True)
    assert errors == []  # no CSP violations or failed requests
    page.close()


def test_a_dicom_series_zip_dropped_on_the_page_shows_the_most_suspicious_slice(browser, local_stack, nih_slices, tmp_path):
    from tests.dicom_factory import display_to_hu, series_zip

    patients = [s.patient for s in nih_slices]
    patient = max(set(patients), key=patients.count)
    archive = tmp_path / "Doe_Jane_CT.zip"  # a patient's name in the file name must not travel
    archive.write_bytes(series_zip([display_to_hu(s.image) for s in nih_slices if s.patient == patient]))
    page = browser.new_page(viewport={"width": 375, "height": 800})
    sent = []
    page.on("request", lambda request: sent.append(request.post_data or "") if request.method == "POST" else None)
    page.goto(local_stack.url + "/")
    page.set_input_files("#file", str(archive))
    page.click("#submit")
    page.wait_for_selector("#figure:not([hidden])", timeout=30_000)
    assert page.inner_text("#result-label") in ("Cancer detected", "No cancer detected")
    assert page.inner_text("#caption").startswith("Most suspicious slice:")
    assert not any("Doe_Jane" in body for body in sent)
    page.screenshot(path=str(ARTIFACTS / "site-series-result-375.png"), full_page=True)
    page.close()
