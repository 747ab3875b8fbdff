"""A series' scored slices as sheets: their layout, what the inference function stores and removes,
and what the API serves to whom."""

import io
import json
import sys
import time

import numpy as np
import pytest
from PIL import Image

from pancscan.detection.predict import ScanResult
from pancscan.outputs.slice_sheets import COLUMNS, SLICES_PER_SHEET, ScoredSlice, scored_indices, sheet_count, slice_sheets, tile_of
from pancscan.service import scans
from pancscan.service.inference import process_upload
from pancscan_local.lambda_runtime import LocalContext
from tests.fakes import InMemorySheetStore
from tests.unit.test_handlers import api, api_event, api_for_hospitals, as_client, env  # noqa: F401 (fixtures)
from tests.unit.test_inference_process import CountingScorer, new_world

MAX = 10_000


def scored_slices(count: int, first_index: int = 0) -> list[ScoredSlice]:
    """Slices whose pixels say which they are: slice k is k/count grey, its heatmap (k+1)/(count+1)."""
    return [ScoredSlice(first_index + 2 * k, np.full((256, 256), k / count, np.float32), np.full((64, 64), (k + 1) / (count + 1), np.float32))
            for k in range(count)]


def tile(sheet: bytes, position: int, size: int) -> np.ndarray:
    place = tile_of(position)
    pixels = np.asarray(Image.open(io.BytesIO(sheet)), np.float32) / 255
    return pixels[place["row"] * size:(place["row"] + 1) * size, place["column"] * size:(place["column"] + 1) * size]


def test_each_slice_and_heatmap_is_found_where_tile_of_says():
    slices = scored_slices(SLICES_PER_SHEET + 3)
    sheets = slice_sheets(slices)
    assert sorted(sheets) == ["heatmaps-0.png", "heatmaps-1.png", "slices-0.jpg", "slices-1.jpg"]
    assert Image.open(io.BytesIO(sheets["slices-0.jpg"])).size == (COLUMNS * 256, SLICES_PER_SHEET // COLUMNS * 256)
    assert Image.open(io.BytesIO(sheets["slices-1.jpg"])).size == (3 * 256, 256)  # a last sheet as large as it needs
    for position in (0, 1, COLUMNS, SLICES_PER_SHEET - 1, SLICES_PER_SHEET, SLICES_PER_SHEET + 2):
        sheet = tile_of(position)["sheet"]
        image = tile(sheets[f"slices-{sheet}.jpg"], position, 256)
        heatmap = tile(sheets[f"heatmaps-{sheet}.png"], position, 64)
        # JPEG: close, and far from the next slice's grey (1/67 away); PNG: exact to 8 bits
        assert np.abs(image - slices[position].image).max() < 0.004
        assert np.abs(heatmap - slices[position].heatmap).max() <= 0.5 / 255 + 1e-6


def test_tiles_run_along_rows_of_eight_and_sheets_hold_sixty_four():
    assert tile_of(0) == {"sheet": 0, "column": 0, "row": 0}
    assert tile_of(9) == {"sheet": 0, "column": 1, "row": 1}
    assert tile_of(63) == {"sheet": 0, "column": 7, "row": 7}
    assert tile_of(64) == {"sheet": 1, "column": 0, "row": 0}
    assert [sheet_count(n) for n in (0, 1, 64, 65, 128)] == [0, 1, 1, 2, 2]


def test_slices_or_heatmaps_of_another_size_are_refused_not_misdrawn():
    for image, heatmap in (((128, 128), (64, 64)), ((256, 256), (32, 32))):
        wrong = [ScoredSlice(0, np.zeros(image, np.float32), np.zeros(heatmap, np.float32))]
        with pytest.raises(ValueError, match="^slice sheets hold 256 x 256 slices and 64 x 64 heatmaps$"):
            slice_sheets(wrong)


def test_a_single_scored_slice_makes_one_tile_sheets():
    sheets = slice_sheets(scored_slices(1))
    assert Image.open(io.BytesIO(sheets["slices-0.jpg"])).size == (256, 256)
    assert Image.open(io.BytesIO(sheets["heatmaps-0.png"])).size == (64, 64)


def test_values_outside_0_1_are_drawn_black_or_white_never_wrapped_around():
    odd = ScoredSlice(0, np.full((256, 256), 0.5, np.float32), np.tile(np.array([-0.5, 1.5], np.float32), (64, 32)))
    heatmap = np.asarray(Image.open(io.BytesIO(slice_sheets([odd])["heatmaps-0.png"])))
    assert heatmap[0, :2].tolist() == [0, 255]


def test_slice_tiles_are_jpeg_at_quality_85_and_heatmaps_lossless_png():
    textured = ScoredSlice(0, np.random.default_rng(0).random((256, 256)).astype(np.float32), np.full((64, 64), 0.3, np.float32))
    sheets = slice_sheets([textured])
    reference = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(reference, format="JPEG", quality=85)
    jpeg = Image.open(io.BytesIO(sheets["slices-0.jpg"]))
    assert jpeg.format == "JPEG" and jpeg.quantization == Image.open(reference).quantization
    assert Image.open(io.BytesIO(sheets["heatmaps-0.png"])).format == "PNG"


def series_record(status=scans.COMPLETE, probabilities=(None, 0.2, None, 0.9, 0.1)) -> scans.ScanRecord:
    record, _ = scans.new_scan(scans.UploadRequest("s.zip", "application/zip", 10), now=0, ttl_seconds=100)
    record.status = status
    record.result = {"series": {"slice_probabilities": list(probabilities)}} if status == scans.COMPLETE else {"reason": {"code": "x"}}
    return record


def test_the_view_lists_only_scored_slices_in_order_with_each_sheets_urls():
    record = series_record(probabilities=[None] + [0.5] * 70)
    view = scans.sheets_view(record, lambda name: f"https://s/{name}", now=10, expires_in=300)
    assert [s["index"] for s in view["slices"]] == list(range(1, 71))
    assert view["slices"][64] == {"index": 65, "sheet": 1, "column": 0, "row": 0}
    assert view["sheets"] == [{"image": "https://s/slices-0.jpg", "heatmap": "https://s/heatmaps-0.png"},
                              {"image": "https://s/slices-1.jpg", "heatmap": "https://s/heatmaps-1.png"}]
    assert (view["scan_id"], view["urls_expire_at"]) == (record.scan_id, 310)
    assert (view["columns"], view["image_tile_px"], view["heatmap_tile_px"]) == (8, 256, 64)


@pytest.mark.parametrize("record", [series_record(scans.REJECTED), scans.new_scan(scans.UploadRequest("a.png", "image/png", 1), 0, 9)[0]])
def test_a_rejected_scan_or_a_single_image_has_no_sheets(record):
    record.status = record.status if record.status == scans.REJECTED else scans.COMPLETE
    view = scans.sheets_view(record, lambda name: pytest.fail("nothing to sign"), now=0, expires_in=300)
    assert view["slices"] == [] and view["sheets"] == []


def test_scored_indices_are_the_slices_with_a_probability():
    assert scored_indices({"slice_probabilities": [None, 0.0, None, 1.0]}) == [1, 3]


# --- the inference function ------------------------------------------------------------------------


def series_result(count: int = 3) -> ScanResult:
    slices = tuple(scored_slices(count))
    return ScanResult("complete", 0.7, "test", label="no_cancer_detected", probability=0.2, confidence=0.8,
                      heatmap=slices[0].heatmap, image=slices[0].image, series={"slice_probabilities": [0.1] * count},
                      technical={"format": "dicom_series"}, scored_slices=slices)


def test_a_series_leaves_its_sheets_beside_its_result():
    table, bucket, key, scan_id = new_world()
    sheets = InMemorySheetStore()
    assert process_upload(key, bucket, table, CountingScorer(series_result()), max_bytes=MAX, now=1, sheets=sheets).status == "complete"
    assert sorted(sheets.objects[scan_id]) == ["heatmaps-0.png", "slices-0.jpg"]
    assert table.get(scan_id).status == "complete"


def test_without_a_sheet_store_a_series_is_recorded_all_the_same():
    table, bucket, key, scan_id = new_world()
    assert process_upload(key, bucket, table, CountingScorer(series_result()), max_bytes=MAX, now=1, sheets=None).status == "complete"
    assert table.get(scan_id).status == "complete"


def test_a_single_image_or_a_rejected_scan_leaves_no_sheets():
    for scorer in (CountingScorer(), CountingScorer(ScanResult("rejected", 0.7, "test"))):
        _, bucket, key, _ = world = new_world()
        sheets = InMemorySheetStore()
        process_upload(key, bucket, world[0], scorer, max_bytes=MAX, now=1, sheets=sheets)
        assert sheets.objects == {}


def test_a_series_deleted_while_it_was_scored_leaves_no_sheets_behind():
    table, bucket, key, scan_id = new_world()
    sheets = InMemorySheetStore()

    class DeletedMeanwhile(CountingScorer):
        def __call__(self, data):
            table.delete(scan_id)  # the owner's DELETE arrives while the model runs
            return super().__call__(data)

    with pytest.raises(Exception):
        process_upload(key, bucket, table, DeletedMeanwhile(series_result()), max_bytes=MAX, now=1, sheets=sheets)
    assert sheets.objects == {} and table.get(scan_id) is None


# --- the API ---------------------------------------------------------------------------------------------


def finished_series(table, owner=None) -> tuple[str, str]:
    record, token = scans.new_scan(scans.UploadRequest("s.zip", "application/zip", 10), now=int(time.time()), ttl_seconds=3600, owner=owner)
    record.status = scans.COMPLETE
    record.result = {"series": {"slice_probabilities": [0.1, None, 0.3]}}
    table.create(record)
    return record.scan_id, token


def sheets_of(handler) -> InMemorySheetStore:
    return sys.modules[handler.__module__].sheets


def test_the_slices_route_serves_the_token_holder_only_and_delete_removes_the_sheets(api):
    handler, table = api
    scan_id, token = finished_series(table)
    sheets_of(handler).put(scan_id, {"slices-0.jpg": b"j", "heatmaps-0.png": b"p"})
    call = lambda method, path, token=None: handler(api_event(method, path, token=token), LocalContext("api"))  # noqa: E731

    answer = call("GET", f"/v1/scans/{scan_id}/slices", token)
    assert answer["statusCode"] == 200 and answer["headers"]["Cache-Control"] == "no-store"
    view = json.loads(answer["body"])
    assert [s["index"] for s in view["slices"]] == [0, 2]
    assert view["sheets"][0]["image"].startswith(f"https://sheets.example/{scan_id}/slices-0.jpg?expires_in=300")
    for wrong in (None, "not-the-token"):
        assert call("GET", f"/v1/scans/{scan_id}/slices", wrong)["statusCode"] == 404

    assert call("DELETE", f"/v1/scans/{scan_id}", token)["statusCode"] == 204
    assert scan_id not in sheets_of(handler).objects
    assert call("GET", f"/v1/scans/{scan_id}/slices", token)["statusCode"] == 404


def test_the_slices_of_a_scan_still_being_scored_are_not_ready(api):
    handler, table = api
    record, token = scans.new_scan(scans.UploadRequest("s.zip", "application/zip", 10), now=int(time.time()), ttl_seconds=3600)
    table.create(record)
    answer = handler(api_event("GET", f"/v1/scans/{record.scan_id}/slices", token=token), LocalContext("api"))
    assert answer["statusCode"] == 409
    assert json.loads(answer["body"]) == {"error": {"code": "not_ready", "message": scans.REQUEST_ERROR_CODES["not_ready"]}}


def test_sheet_urls_never_outlive_the_result(api):
    handler, table = api
    scan_id, token = finished_series(table)
    record = table.records[scan_id]
    record.expires_at = int(time.time()) + 60
    view = json.loads(handler(api_event("GET", f"/v1/scans/{scan_id}/slices", token=token), LocalContext("api"))["body"])
    assert view["urls_expire_at"] <= record.expires_at
    assert "expires_in=300" not in view["sheets"][0]["image"]


def test_with_hospital_auth_only_the_owning_client_gets_the_slices(api_for_hospitals):
    handler, table = api_for_hospitals
    scan_id, token = finished_series(table, owner="hospital-a")
    read = lambda client: handler(as_client(api_event("GET", f"/v1/scans/{scan_id}/slices", token=token), client), LocalContext("api"))["statusCode"]  # noqa: E731
    assert read("hospital-a") == 200
    assert read("hospital-b") == 404


def test_the_slices_route_answers_other_methods_with_405(api):
    handler, _ = api
    answer = handler(api_event("POST", "/v1/scans/0f1e/slices"), LocalContext("api"))
    assert answer["statusCode"] == 405 and answer["headers"]["Allow"] == "GET"
