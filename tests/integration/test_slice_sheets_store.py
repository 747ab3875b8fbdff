"""A series' slice sheets in the real store (moto's S3 and DynamoDB): written by the inference
handler, served by the API through presigned GETs to the token holder, removed by DELETE, never
left behind by a scan deleted while it was scored, expiring with the result."""

import io
from base64 import b64decode
from urllib.parse import quote_plus

import numpy as np
import pytest
import requests
from PIL import Image

from pancscan.service.aws import S3SheetStore
from tests.dicom_factory import display_to_hu, series_zip
from tests.integration.conftest import BUCKET
from tests.integration.test_pipeline import create, item, upload


@pytest.fixture(scope="module")
def series(nih_slices) -> bytes:
    patient = nih_slices[0].patient
    return series_zip([display_to_hu(s.image) for s in nih_slices if s.patient == patient][:6], spacing=3.0)


def sheet_keys(aws, scan_id: str) -> list[str]:
    listed = aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix=f"results/{scan_id}/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def scored(aws, api, inference, data: bytes) -> dict:
    created = create(api, data, "application/zip", "s.zip")
    inference(quote_plus(upload(aws, created, data)))
    return created


def test_every_scored_slice_of_a_series_is_served_to_the_token_holder_as_sheets(aws, api, inference, series):
    created = scored(aws, api, inference, series)
    scan_id, token = created["scan_id"], created["result_token"]
    status, result = api("GET", f"/v1/scans/{scan_id}", token=token)
    assert status == 200 and result["status"] == "complete"
    assert sheet_keys(aws, scan_id) == [f"results/{scan_id}/heatmaps-0.png", f"results/{scan_id}/slices-0.jpg"]
    assert "heatmaps-0" not in str(item(aws, scan_id))  # beside the item, not in it

    status, view = api("GET", f"/v1/scans/{scan_id}/slices", token=token)
    assert status == 200
    scored_slices = [i for i, p in enumerate(result["series"]["slice_probabilities"]) if p is not None]
    assert [s["index"] for s in view["slices"]] == scored_slices and len(scored_slices) >= 2
    image = Image.open(io.BytesIO(requests.get(view["sheets"][0]["image"], timeout=10).content))
    heatmap = Image.open(io.BytesIO(requests.get(view["sheets"][0]["heatmap"], timeout=10).content))
    assert image.format == "JPEG" and image.size == (256 * len(scored_slices), 256)
    assert heatmap.format == "PNG" and heatmap.size == (64 * len(scored_slices), 64)
    # the most suspicious slice's tile is the heatmap the scan's own view carries
    top = scored_slices.index(result["series"]["most_suspicious_slice"])
    own = np.asarray(Image.open(io.BytesIO(b64decode(result["heatmap"]["data"]))))
    assert np.array_equal(np.asarray(heatmap)[:, 64 * top:64 * (top + 1)], own)

    assert api("GET", f"/v1/scans/{scan_id}/slices", token="wrong")[0] == 404
    assert api("GET", f"/v1/scans/{scan_id}/slices")[0] == 404


def test_delete_removes_the_sheets_with_the_result(aws, api, inference, series):
    created = scored(aws, api, inference, series)
    assert sheet_keys(aws, created["scan_id"])
    assert api("DELETE", f"/v1/scans/{created['scan_id']}", token=created["result_token"]) == (204, None)
    assert sheet_keys(aws, created["scan_id"]) == [] and item(aws, created["scan_id"]) is None
    assert aws["s3"].list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_a_series_deleted_while_it_is_scored_leaves_neither_item_nor_sheets(aws, api, inference, series, monkeypatch):
    import pancscan.service.inference

    created = create(api, series, "application/zip", "s.zip")
    key = upload(aws, created, series)
    real_sheets = pancscan.service.inference.slice_sheets

    def delete_first(slices):  # the owner's DELETE lands while the model's output is turned into sheets
        assert api("DELETE", f"/v1/scans/{created['scan_id']}", token=created["result_token"]) == (204, None)
        return real_sheets(slices)

    monkeypatch.setattr(pancscan.service.inference, "slice_sheets", delete_first)
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        inference(quote_plus(key))
    assert item(aws, created["scan_id"]) is None
    assert aws["s3"].list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_sheets_expire_with_the_result_by_the_buckets_lifecycle_rule(aws):
    rules = {r["ID"]: r for r in aws["s3"].get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]}
    assert rules["expire-results"]["Filter"] == {"Prefix": "results/"}
    assert rules["expire-results"]["Expiration"]["Days"] == 7  # ResultTtlDays, as the item's TTL


def test_the_sheet_store_deletes_every_object_of_a_scan_and_no_other(aws):
    store = S3SheetStore(BUCKET)
    store.put("a", {f"slices-{k}.jpg": b"x" for k in range(3)} | {"heatmaps-0.png": b"y"})
    store.put("ab", {"slices-0.jpg": b"z"})  # a scan id that begins like another's
    store.delete("a")
    assert sheet_keys(aws, "a") == [] and sheet_keys(aws, "ab") == ["results/ab/slices-0.jpg"]
    head = aws["s3"].head_object(Bucket=BUCKET, Key="results/ab/slices-0.jpg")
    assert head["ContentType"] == "image/jpeg"
    store.delete("nothing-here")  # nothing to delete is not an error
