"""Exact answers at the edges: the OpenAPI document's error responses per operation, the size field's
validation, upload request refusals, image decoding (modes, dtype, the colour threshold) and the
out-of-distribution rules (feature class boundaries, range boundaries, reasons shown to the user)."""

import base64
import io
import json
import sys

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from pancscan.service import scans
from pancscan.errors import ScanRejected
from pancscan.reading.imaging import _to_grey, decode_image, hu_to_display, to_model_input
from pancscan.detection.ood import check_image, check_pancreas, slice_features
from pancscan_local.lambda_runtime import LocalContext
from tests.conftest import png_bytes
from tests.unit.test_handlers import (  # noqa: F401 (fixtures)
    api, api_event, api_for_hospitals, as_client, cold_handler_with_fake_stores, env,
)
from tests.unit.test_result_and_api_details import openapi_document

# --- the OpenAPI document's error responses ---------------------------------------------------------

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
GATEWAY_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/GatewayError"}}}
BEARER_CHALLENGE = {"www-authenticate": {"description": 'Bearer scope="..." error="..." error_description="why"',
                                         "schema": {"type": "string"}}}
INVALID = {"description": "invalid request", "content": ERROR_BODY}
NOT_READY = {"description": "no final result yet", "content": ERROR_BODY}
# API Gateway's own refusals, documented only when the JWT authorizer guards the routes
UNAUTHORIZED = {"description": "no valid access token", "headers": BEARER_CHALLENGE, "content": GATEWAY_ERROR}
FORBIDDEN = {"description": "the token lacks this route's scope", "headers": BEARER_CHALLENGE, "content": GATEWAY_ERROR}


def error_responses(document: dict, path: str, method: str) -> dict:
    """The operation's non-2xx responses."""
    return {code: answer for code, answer in document["paths"][path][method]["responses"].items() if not code.startswith("2")}


def test_public_document_lists_each_operations_error_responses_exactly(api):
    handler, _ = api
    document = openapi_document(handler)
    not_found = {"description": "unknown scan, or wrong or missing token", "content": ERROR_BODY}
    assert error_responses(document, "/v1/scans", "post") == {"400": INVALID}
    assert error_responses(document, "/v1/scans/{scan_id}", "get") == {"400": INVALID, "404": not_found, "409": NOT_READY}
    assert error_responses(document, "/v1/scans/{scan_id}", "delete") == {"400": INVALID, "404": not_found}
    assert error_responses(document, "/v1/health", "get") == {}


def test_hospital_document_adds_the_gateways_401_and_403_with_a_bearer_challenge(api_for_hospitals):
    handler, _ = api_for_hospitals
    document = openapi_document(handler)
    not_found = {"description": "unknown scan, or another client's", "content": ERROR_BODY}
    gateway = {"401": UNAUTHORIZED, "403": FORBIDDEN}
    assert error_responses(document, "/v1/scans", "post") == {"400": INVALID, **gateway}
    assert error_responses(document, "/v1/scans/{scan_id}", "get") == {"400": INVALID, "404": not_found, "409": NOT_READY,
                                                                       **gateway}
    assert error_responses(document, "/v1/scans/{scan_id}", "delete") == {"400": INVALID, "404": not_found, **gateway}
    assert error_responses(document, "/v1/health", "get") == {}


def test_the_referenced_error_schemas_are_published(api_for_hospitals):
    handler, _ = api_for_hospitals
    schemas = openapi_document(handler)["components"]["schemas"]
    assert schemas["ErrorBody"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert schemas["GatewayError"]["properties"]["message"]["enum"] == ["Unauthorized", "Forbidden"]


# --- the size field and upload request limits, through the API --------------------------------------

MAX = 1000
INVALID_SIZE = {"error": {"code": "invalid_request",
                          "message": "invalid or missing: size (expected filename, content_type and size)"}}


@pytest.fixture
def small_api(env, monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", str(MAX))
    handler, table, _ = cold_handler_with_fake_stores("api", monkeypatch)
    return handler, table


def create(handler, size, content_type="image/png"):
    body = json.dumps({"filename": "s.png", "content_type": content_type, "size": size})
    response = handler(api_event("POST", "/v1/scans", body), LocalContext("api"))
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("size", [1, MAX, 20.0], ids=["one-byte", "exactly-max", "whole-float"])
def test_sizes_from_one_byte_to_the_maximum_are_accepted_and_stored_as_integers(small_api, size):
    handler, table = small_api
    status, body = create(handler, size)
    assert status == 201
    record = table.get(body["scan_id"])
    assert record.size == size and type(record.size) is int
    assert record.content_type == "image/png"


@pytest.mark.parametrize("size", [0, -1, 20.5, "10", True, None], ids=["zero", "negative", "fraction", "string", "bool", "null"])
def test_sizes_that_are_not_a_positive_whole_number_are_invalid(small_api, size):
    handler, table = small_api
    assert create(handler, size) == (400, INVALID_SIZE)


def test_one_byte_over_the_maximum_is_too_large_with_the_limit_in_the_message(small_api):
    handler, _ = small_api
    assert create(handler, MAX + 1) == (400, {"error": {"code": "too_large", "message": "size must be at most 1000 bytes"}})


@pytest.mark.parametrize("size, message", [("10", "Value error, must be a number"), (True, "Value error, must be a number"),
                                           (20.5, "Value error, must be a whole number")])
def test_the_size_validator_says_why_a_value_is_refused(api, size, message):
    handler, _ = api
    module = sys.modules[handler.__module__]
    with pytest.raises(ValidationError) as caught:
        module.CreateScan.model_validate({"filename": "s.png", "content_type": "image/png", "size": size})
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [(("size",), message)]


# --- the scan domain: upload requests and new scans --------------------------------------------------

ALL_TYPES = "image/png, image/jpeg, application/dicom, application/zip, application/gzip, application/octet-stream"


def test_an_unsupported_type_is_refused_with_every_accepted_type_listed():
    with pytest.raises(scans.InvalidRequest) as caught:
        scans.validate_upload_request(scans.UploadRequest("a.gif", "image/gif", 10), MAX)
    assert caught.value.code == "unsupported_type"
    assert caught.value.message == str(caught.value) == f"content_type must be one of {ALL_TYPES}"


@pytest.mark.parametrize("content_type", scans.CONTENT_TYPES)
def test_each_accepted_type_passes_at_one_byte_and_at_the_maximum(content_type):
    for size in (1, MAX):
        scans.validate_upload_request(scans.UploadRequest("x", content_type, size), MAX)


def test_the_domain_refuses_one_byte_over_the_maximum_with_the_limit_in_the_message():
    with pytest.raises(scans.InvalidRequest) as caught:
        scans.validate_upload_request(scans.UploadRequest("a.png", "image/png", MAX + 1), MAX)
    assert (caught.value.code, caught.value.message, str(caught.value)) == ("too_large", "size must be at most 1000 bytes",
                                                                           "size must be at most 1000 bytes")


@pytest.mark.parametrize("content_type", ["application/dicom", "application/zip"])
def test_a_new_scan_keeps_the_declared_content_type_and_size(content_type):
    record, _ = scans.new_scan(scans.UploadRequest("a", content_type, 77), now=5, ttl_seconds=10)
    assert (record.content_type, record.size, record.created_at, record.expires_at) == (content_type, 77, 5, 15)


def test_the_result_token_carries_256_random_bits_url_safe():
    _, token = scans.new_scan(scans.UploadRequest("a", "image/png", 1), now=0, ttl_seconds=10)
    assert len(token) == 43 and "=" not in token
    assert len(base64.urlsafe_b64decode(token + "=")) == 32


# --- image decoding ----------------------------------------------------------------------------------

def png_of(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def rgb_png(pixels: list[list[tuple[int, int, int]]]) -> bytes:
    return png_bytes(np.array(pixels, np.uint8))


@pytest.mark.parametrize("data", [b"", b"GIF89a" + b"\0" * 64, b"\x89PNG\r\n"], ids=["empty", "gif", "short-png-signature"])
def test_a_file_without_a_png_or_jpeg_signature_is_unreadable_with_its_message(data):
    with pytest.raises(ScanRejected) as caught:
        decode_image(data)
    assert (caught.value.code, str(caught.value)) == ("unreadable_file", "Not a PNG or JPEG file.")


def test_a_truncated_png_is_unreadable_with_its_message():
    data = png_bytes(np.random.default_rng(3).integers(0, 255, (64, 64)).astype(np.uint8))
    with pytest.raises(ScanRejected) as caught:
        decode_image(data[: len(data) // 2])
    assert (caught.value.code, str(caught.value)) == ("unreadable_file", "The image file is damaged or truncated.")


def test_an_8_bit_greyscale_png_decodes_to_float32_intensities():
    decoded = decode_image(png_bytes(np.array([[0, 7, 255]], np.uint8)))
    assert decoded.grey.dtype == np.float32
    assert decoded.grey.tolist() == [[0.0, 7.0, 255.0]]


def test_a_greyscale_png_with_alpha_decodes_to_one_float32_grey_channel():
    decoded = decode_image(png_of(Image.fromarray(np.array([[[10, 0], [200, 255]]], np.uint8), "LA")))
    assert decoded.grey.dtype == np.float32
    assert decoded.grey.tolist() == [[10.0, 200.0]]


def test_a_one_bit_image_decodes_to_black_0_and_white_255():
    img = Image.new("1", (2, 1))
    img.putdata([0, 1])
    decoded = _to_grey(img)
    assert decoded.grey.dtype == np.float32
    assert decoded.grey.tolist() == [[0.0, 255.0]]
    assert decoded.is_colour is False


def test_an_rgb_png_decodes_to_the_float32_channel_mean():
    decoded = decode_image(rgb_png([[(30, 60, 90), (255, 255, 255)]]))
    assert decoded.grey.dtype == np.float32
    assert decoded.grey.tolist() == [[60.0, 255.0]]


def test_an_opaque_grey_rgba_png_is_its_grey_level_not_mixed_with_the_alpha():
    img = Image.fromarray(np.array([[[100, 100, 100, 255], [40, 40, 40, 255]]], np.uint8), "RGBA")
    decoded = decode_image(png_of(img))
    assert decoded.grey.tolist() == [[100.0, 40.0]]
    assert decoded.is_colour is False


@pytest.mark.parametrize("pixel, is_colour", [((100, 102, 104), False), ((100, 100, 105), True)], ids=["spread-4", "spread-5"])
def test_colour_means_a_mean_channel_spread_above_4(pixel, is_colour):
    decoded = decode_image(rgb_png([[pixel, pixel]]))
    assert decoded.is_colour is is_colour


def test_a_mean_spread_just_above_4_is_colour():
    # spreads 4 and 5: mean 4.5, above the threshold
    decoded = decode_image(rgb_png([[(100, 102, 104), (100, 100, 105)]]))
    assert decoded.is_colour is True


# --- windowing and the model input ---------------------------------------------------------------

def test_a_soft_tissue_window_maps_its_low_end_centre_and_high_end_to_0_127_5_255():
    # DICOM pixel data is int16; the display is float32 whatever the input type
    display = hu_to_display(np.array([-1000, -160, 40, 240, 3000], np.int16), center=40, width=400)
    assert display.dtype == np.float32
    assert display.tolist() == [0.0, 0.0, 127.5, 255.0, 255.0]


def test_upscaling_interpolates_linearly_between_pixel_centres_in_floating_point():
    # an 8-bit step: bilinear gives a quarter and three quarters, not whole grey levels and no overshoot
    model_input = to_model_input(np.array([[0, 255], [0, 255]], np.uint8), size=4)
    assert model_input.dtype == np.float32
    for row in model_input:
        assert row == pytest.approx([0.0, 0.25, 0.75, 1.0], abs=1e-6)


def test_intensities_outside_0_255_are_clipped_to_the_unit_range():
    model_input = to_model_input(np.array([[-50.0, 300.0], [0.0, 255.0]]), size=2)
    assert model_input.tolist() == [[0.0, 1.0], [0.0, 1.0]]


# --- out-of-distribution features: each intensity class's boundary, on real model inputs -------------

NO_CLASS = {"zero_fraction": 0.0, "saturated_fraction": 0.0, "soft_tissue_fraction": 0.0, "border_zero_fraction": 0.0}


def features_of_uniform(grey: int) -> dict[str, float]:
    return slice_features(to_model_input(np.full((256, 256), grey, np.float32)))


@pytest.mark.parametrize(
    "grey, expected",
    [
        (1, {"zero_fraction": 1.0, "border_zero_fraction": 1.0}),  # below 2 HU: air or fat
        (2, {}),  # 2 HU is no longer zero
        (20, {}),  # soft tissue starts above 20 HU
        (21, {"soft_tissue_fraction": 1.0}),
        (199, {"soft_tissue_fraction": 1.0}),
        (200, {}),  # and ends below 200 HU
        (250, {}),  # saturated starts above 250 HU
        (251, {"saturated_fraction": 1.0}),
    ],
)
def test_each_intensity_class_ends_exactly_at_its_boundary(grey, expected):
    assert features_of_uniform(grey) == NO_CLASS | expected


def test_a_border_at_2_hu_is_not_a_zero_border_though_the_inside_is_zero():
    grey = np.full((256, 256), 2, np.float32)
    grey[6:-6, 6:-6] = 1
    features = slice_features(to_model_input(grey))
    assert features["border_zero_fraction"] == 0.0
    assert features["zero_fraction"] == pytest.approx(244 * 244 / 256**2)


# --- out-of-distribution rules: range boundaries and the reasons the user reads ----------------------

RANGES = {"zero_fraction": [0.25, 0.75], "soft_tissue_fraction": [0.1, 0.5]}


@pytest.mark.parametrize("zero, soft", [(0.25, 0.3), (0.75, 0.3), (0.5, 0.1), (0.5, 0.5)])
def test_features_on_either_end_of_their_range_pass(zero, soft):
    check_image({"zero_fraction": zero, "soft_tissue_fraction": soft}, RANGES, is_colour=False)


@pytest.mark.parametrize(
    "features, detail",
    [
        ({"zero_fraction": 0.2499, "soft_tissue_fraction": 0.3}, "zero fraction 0.25 is outside 0.25-0.75"),
        ({"zero_fraction": 0.7501, "soft_tissue_fraction": 0.3}, "zero fraction 0.75 is outside 0.25-0.75"),
        ({"zero_fraction": 0.5, "soft_tissue_fraction": 0.0}, "soft tissue fraction 0.00 is outside 0.10-0.50"),
    ],
)
def test_a_feature_just_outside_its_range_is_named_in_the_rejection(features, detail):
    with pytest.raises(ScanRejected) as caught:
        check_image(features, RANGES, is_colour=False)
    assert caught.value.code == "not_abdominal_ct"
    assert str(caught.value) == ("The image does not look like an axial abdominal CT slice with grey = HU clipped to 0..255 "
                                 f"({detail}).")


def test_a_colour_image_is_rejected_with_its_own_reason():
    with pytest.raises(ScanRejected) as caught:
        check_image({"zero_fraction": 0.5}, RANGES, is_colour=True)
    assert (caught.value.code, str(caught.value)) == ("not_abdominal_ct", "This is a colour image; CT slices are greyscale.")


def test_a_pancreas_score_at_the_minimum_passes():
    check_pancreas(0.3, minimum=0.3)


def test_a_pancreas_score_below_the_minimum_is_rejected_with_its_reason():
    with pytest.raises(ScanRejected) as caught:
        check_pancreas(0.2999, minimum=0.3)
    assert caught.value.code == "not_abdominal_ct"
    assert str(caught.value) == "No pancreas was found in this slice; PancScan only scores axial CT slices through the pancreas."
