"""The page in a real headless Chromium (Debian's), driven by Playwright, against the local stack.

Screenshots of each state go to test-artifacts/ (looked at by people, not compared by tests).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import jpeg_bytes, png_bytes
from tests.e2e.conftest import MAX_UPLOAD_BYTES

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page_at(browser, local_stack):
    pages = []

    def open_page(viewport=DESKTOP, color_scheme="light"):
        page = browser.new_page(viewport=viewport, color_scheme=color_scheme)
        page.errors = []
        page.api_posts = []
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: page.api_posts.append(r.post_data or "") if r.method == "POST" and "/v1/scans" in r.url else None)
        page.goto(local_stack.url + "/")
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"site-{name}.png"), full_page=True)


def analyse(page, path: Path) -> None:
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#submit:not([disabled])")
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)


def axe_problems(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']}" for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


@pytest.fixture(scope="module")
def detected_tumour(shipped_split, shipped_model, tmp_path_factory):
    """A real tumour of a test case (MSD, never trained on) as a JPEG in the radiological view: the
    first slice, in file order, that the model detects with its heatmap's peak on the tumour."""
    from pancscan.detection.predict import predict_model_input
    from pancscan.reading.imaging import to_model_input
    from pancscan_model.evaluate import peak_on_tumour

    tumours, _ = shipped_split
    item = next(s for s in tumours if (r := predict_model_input(to_model_input(s.image), shipped_model)).label == "cancer_detected"
                and peak_on_tumour(r.heatmap, s.tumour, margin_px=6))
    path = tmp_path_factory.mktemp("tumour") / f"{item.name}.jpg"  # a case id in the name must not travel
    path.write_bytes(jpeg_bytes(item.image, quality=90))
    return path


def test_a_slice_goes_from_file_to_an_understood_result_with_heatmap_controls(page_at, detected_tumour):
    page = page_at()
    shot(page, "1-empty-desktop")
    page.set_input_files("#file", str(detected_tumour))
    page.wait_for_selector("#chosen:not([hidden])")
    assert page.inner_text("#file-summary").startswith("JPEG image")
    shot(page, "2-chosen-preview")
    page.click("#submit")
    page.wait_for_selector("#figure:not([hidden])", timeout=30_000)
    assert page.inner_text("#result-label") in ("Cancer detected", "No cancer detected")
    assert page.get_attribute("#upload-progress", "value") == "100"
    assert page.get_attribute("[data-step=done]", "aria-current") == "step"
    assert "95 in 100" in page.inner_text("#threshold")
    assert "not a diagnosis" in page.inner_text("#result-summary")
    shot(page, "3-result-desktop")
    # the heatmap's opacity and toggle redraw the picture
    with_heat = page.eval_on_selector("#view", "c => c.toDataURL()")
    page.uncheck("#show-heatmap")
    without_heat = page.eval_on_selector("#view", "c => c.toDataURL()")
    page.check("#show-heatmap")
    page.fill("#opacity", "100")
    page.dispatch_event("#opacity", "input")
    stronger = page.eval_on_selector("#view", "c => c.toDataURL()")
    assert len({with_heat, without_heat, stronger}) == 3
    # the neutral name went to the API, and this browser keeps only ids and tokens
    assert all("MSD_" not in body for body in page.api_posts)
    stored = json.loads(page.evaluate("localStorage.getItem('pancscan.recent')"))
    assert len(stored) == 1 and set(stored[0]) == {"scan_id", "result_token"}
    assert page.locator("#recent li").count() == 1
    assert page.errors == []


def test_a_colour_photo_is_rejected_with_its_reason_in_plain_language(page_at, tmp_path):
    photo = tmp_path / "holiday.png"
    photo.write_bytes(png_bytes(np.random.default_rng(1).integers(0, 256, (300, 400, 3))))
    page = page_at()
    analyse(page, photo)
    assert page.inner_text("#result-label") == "Not analysed"
    assert "does not look like an axial CT slice" in page.inner_text("#reason")
    assert "not_abdominal_ct" in page.inner_text("#reason")
    shot(page, "4-rejected")


def test_an_oversized_or_unsupported_file_is_refused_before_upload(page_at, tmp_path):
    big = tmp_path / "big.dcm"
    big.write_bytes(b"\0" * (MAX_UPLOAD_BYTES + 1))
    page = page_at()
    page.set_input_files("#file", str(big))
    page.wait_for_selector("#file-error:has-text('MB')")
    assert "accepts up to 40 MB" in page.inner_text("#file-error")
    assert page.is_disabled("#submit")
    shot(page, "5-too-large")
    gif = tmp_path / "x.gif"
    gif.write_bytes(b"GIF89a")
    page.set_input_files("#file", str(gif))
    page.wait_for_selector("#file-error:has-text('Choose one of those')")
    assert page.api_posts == []  # nothing was sent


def test_delete_removes_the_result_and_the_api_then_answers_404(page_at, local_stack, nih_dir):
    page = page_at()
    analyse(page, sorted((nih_dir / "images").glob("*.jpg"))[6])
    scan = json.loads(page.evaluate("localStorage.getItem('pancscan.recent')"))[0]
    url = f"{local_stack.url}/v1/scans/{scan['scan_id']}"
    assert requests.get(url, headers={"X-Scan-Token": scan["result_token"]}).status_code == 200
    page.click("#delete")
    page.wait_for_selector("#result", state="hidden")
    assert "deleted" in page.inner_text("#status")
    assert requests.get(url, headers={"X-Scan-Token": scan["result_token"]}).status_code == 404
    assert page.evaluate("localStorage.getItem('pancscan.recent')") == "[]"
    shot(page, "6-deleted")


def test_the_page_works_on_a_phone_without_sideways_scrolling(page_at, nih_dir):
    page = page_at(PHONE)
    analyse(page, sorted((nih_dir / "images").glob("*.jpg"))[7])
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "7-result-phone")


def test_keyboard_alone_reaches_and_operates_the_form(page_at, nih_dir):
    page = page_at()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "file"
    page.set_input_files("#file", str(sorted((nih_dir / "images").glob("*.jpg"))[8]))  # the file dialog itself is the OS's
    page.wait_for_selector("#submit:not([disabled])")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "submit"
    page.keyboard.press("Enter")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_or_critical_accessibility_violations(page_at, nih_dir, scheme):
    page = page_at(color_scheme=scheme)
    assert axe_problems(page) == []
    analyse(page, sorted((nih_dir / "images").glob("*.jpg"))[9])
    page.wait_for_selector("#figure:not([hidden])")
    assert axe_problems(page) == []
    if scheme == "dark":
        shot(page, "8-result-dark")


def test_a_dicom_series_zip_shows_the_most_suspicious_slice_chart_and_scroller(page_at, nih_slices, tmp_path):
    from tests.dicom_factory import display_to_hu, series_zip

    patients = [s.patient for s in nih_slices]
    patient = max(set(patients), key=patients.count)
    archive = tmp_path / "Doe_Jane_CT.zip"  # a patient's name in the file name must not travel
    archive.write_bytes(series_zip([display_to_hu(s.image) for s in nih_slices if s.patient == patient]))
    page = page_at(PHONE)
    analyse(page, archive)
    page.wait_for_selector("#series:not([hidden])")
    page.wait_for_selector("#slices-status:has-text('Move the slider')")
    assert "the most suspicious" in page.inner_text("#caption")
    assert "(most suspicious)" in page.inner_text("#slice-value")
    page.fill("#slice", "1")
    page.dispatch_event("#slice", "input")
    assert page.inner_text("#slice-value").startswith("Scored slice 1 of")
    assert not any("Doe_Jane" in body for body in page.api_posts)
    shot(page, "9-series-phone")


def canvas_pixels(page) -> str:
    return page.evaluate("document.getElementById('view').toDataURL()")


def test_a_300_slice_series_shows_every_scored_slice_with_its_heatmap_by_slider_and_arrow_keys(page_at, local_stack, nih_slices, tmp_path):
    """Real length: 300 different NIH slices, patient after patient, 2 mm apart (as `make bench-series`)."""
    from tests.dicom_factory import display_to_hu, series_zip

    ordered = sorted(nih_slices, key=lambda s: (s.patient, s.name))[:300]
    archive = tmp_path / "series.zip"
    archive.write_bytes(series_zip([display_to_hu(s.image) for s in ordered], spacing=2.0))
    page = page_at()
    page.set_input_files("#file", str(archive))
    page.wait_for_selector("#submit:not([disabled])")
    page.click("#submit")
    page.wait_for_selector("#slices-status:has-text('Move the slider')", timeout=120_000)
    scan = json.loads(page.evaluate("localStorage.getItem('pancscan.recent')"))[0]
    result = requests.get(f"{local_stack.url}/v1/scans/{scan['scan_id']}", headers={"X-Scan-Token": scan["result_token"]}, timeout=10).json()
    series = result["series"]
    scored = [i for i, p in enumerate(series["slice_probabilities"]) if p is not None]
    assert series["slices"] == 300 and len(scored) > 100

    # the slider steps through the scored slices; it opens on the most suspicious one
    assert page.get_attribute("#slice", "max") == str(len(scored))
    opened = page.input_value("#slice")
    assert int(opened) == scored.index(series["most_suspicious_slice"]) + 1
    shot(page, "10-series-300-slices")
    first_view = canvas_pixels(page)

    # each step draws that slice (its image and heatmap), and says which slice it is and where
    page.fill("#slice", "1")
    page.dispatch_event("#slice", "input")
    assert page.inner_text("#slice-value").startswith(f"Scored slice 1 of {len(scored)}: slice {scored[0] + 1} of 300, 0.0 mm")
    assert page.inner_text("#caption").startswith(f"Slice {scored[0] + 1} of 300")
    one = canvas_pixels(page)
    assert one != first_view
    page.focus("#view")
    page.keyboard.press("ArrowRight")
    assert page.input_value("#slice") == "2"
    two = canvas_pixels(page)
    assert two not in (one, first_view)
    assert f"slice {scored[1] + 1} of 300" in page.inner_text("#slice-value")
    page.keyboard.press("ArrowLeft")
    assert canvas_pixels(page) == one  # the same slice draws the same picture
    page.uncheck("#show-heatmap")
    assert canvas_pixels(page) != one  # the heatmap was drawn over it
    page.check("#show-heatmap")
    page.focus("#slice")
    page.keyboard.press("End")
    assert f"slice {scored[-1] + 1} of 300" in page.inner_text("#slice-value")

    # the curve: axes in millimetres and probability, the slice threshold, and how the scan probability comes about
    chart = page.text_content("#chart")
    assert "0 mm" in chart and f"{series['positions_mm'][-1]:.0f} mm" in chart and "slice probability" in chart
    threshold_y = float(page.get_attribute("#chart .threshold", "y1"))
    assert threshold_y == pytest.approx(100 - series["slice_threshold"] * 92, abs=0.01)
    explained = page.inner_text("#series-explained")
    assert "not an average of its slices" in explained and f"{len(scored)} slices" in explained
    assert page.errors == []
    shot(page, "11-series-300-last-slice")


def test_a_dicom_slice_is_previewed_before_upload(page_at, nih_slices, tmp_path):
    from tests.dicom_factory import ct_dataset, display_to_hu, to_bytes

    path = tmp_path / "IM0001"  # DICOM files often have no extension
    path.write_bytes(to_bytes(ct_dataset(display_to_hu(nih_slices[0].image))))
    page = page_at()
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#chosen:not([hidden])")
    assert page.inner_text("#preview-caption") == "Preview of the chosen image."
    # the preview shows the slice: not a blank canvas
    spread = page.eval_on_selector("#preview", "c => { const d = c.getContext('2d').getImageData(0, 0, 256, 256).data;"
                                                " let lo = 255, hi = 0; for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); } return hi - lo; }")
    assert spread > 100
    shot(page, "10-dicom-preview")


def test_a_result_that_never_comes_says_so_and_offers_a_retry(page_at, nih_dir):
    page = page_at()
    page.clock.install()
    # the API keeps answering "pending", as if the analysis never ran
    page.route("**/v1/scans/*", lambda route: route.fulfill(status=200, content_type="application/json",
                                                             body=json.dumps({"status": "pending"}))
               if route.request.method == "GET" else route.continue_())
    page.set_input_files("#file", str(sorted((nih_dir / "images").glob("*.jpg"))[10]))
    page.wait_for_selector("#submit:not([disabled])")
    page.click("#submit")
    page.wait_for_selector("#status:has-text('Uploaded')")
    page.clock.run_for(95_000)
    page.wait_for_selector("#retry:not([hidden])")
    assert "No result after 90 seconds" in page.inner_text("#status")
    shot(page, "11-timeout")


def test_a_real_tumour_slice_shows_its_heatmap_on_the_tumour(page_at, detected_tumour):
    page = page_at()
    analyse(page, detected_tumour)
    page.wait_for_selector("#figure:not([hidden])")
    assert page.inner_text("#result-label") == "Cancer detected"
    assert "No spot" not in page.inner_text("#caption")  # the heatmap marks something
    shot(page, "11-real-tumour")  # looked at: the heatmap's hottest spot on the tumour (MODEL_CARD.md)


def test_a_normal_slice_without_a_hot_spot_says_that_nothing_is_marked(page_at, local_stack, nih_dir, shipped_model):
    from pancscan.detection.predict import predict_bytes

    quiet = next(p for p in sorted((nih_dir / "images").glob("*.jpg")) if predict_bytes(p.read_bytes(), shipped_model).heatmap.max() <= 0.1)
    page = page_at()
    analyse(page, quiet)
    page.wait_for_selector("#figure:not([hidden])")
    assert "No spot on this slice reached 10%" in page.inner_text("#caption")
