"""The exact answers of the guards: the local JWT authorizer's refusals and time boundaries, how each
greyscale image mode is scaled to 0..255, the folder zip's contents and size limit, and the OOD ranges."""

import io
import json
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from pancscan.reading.archive import zip_folder
from pancscan.errors import ScanRejected
from pancscan.reading.imaging import _to_grey, decode_image
from pancscan.detection.ood import fit_ranges
from pancscan_local.auth import Denied, authorize, event_authorizer
from tests.unit.test_authorizer import CONFIG, NOW, claims, signed

MB = 2**20


# --- the local JWT authorizer ---------------------------------------------------------------------

def denial(header, scopes=("pancscan/read",), now=NOW) -> Denied:
    with pytest.raises(Denied) as denied:
        authorize(header, CONFIG, scopes, now=now)
    return denied.value


def challenge(description: str, scope: str = "", error: str = "invalid_token") -> str:
    return f'Bearer scope="{scope}" error="{error}" error_description="{description}"'


@pytest.mark.parametrize("header, description", [
    (None, "no token in the Authorization header"),
    ("Bearer   ", "no token in the Authorization header"),
    (signed(claims(), kid="k2"), "the token is not signed by a key of the issuer"),
    ("Bearer abc.def.ghi", "the token's signature or form is invalid"),
    (signed(claims(iss="https://elsewhere.example")), "the token does not have a valid issuer"),
    (signed(claims(client_id="hospital-z")), "the token does not have a valid audience"),
    (signed(claims(exp=NOW - 1)), "the token has expired"),
    (signed(claims(nbf=NOW + 60)), "the token is not valid yet"),
    (signed(claims(iat=NOW + 60)), "the token was issued in the future"),
])
def test_each_401_names_its_reason_in_the_challenge_header(header, description):
    denied = denial(header)
    assert denied.status == 401
    assert str(denied) == description
    assert denied.headers == {"Content-Type": "application/json", "www-authenticate": challenge(description)}
    assert json.loads(denied.body) == {"message": "Unauthorized"}


def test_a_403_lists_every_expected_scope_in_the_description_and_the_scope_attribute():
    scopes = ("pancscan/read", "pancscan/admin")
    denied = denial(signed(claims(scope="pancscan/submit")), scopes)
    assert denied.status == 403
    assert str(denied) == "expected scopes: [pancscan/read pancscan/admin]"
    assert denied.headers == {
        "Content-Type": "application/json",
        "www-authenticate": challenge("expected scopes: [pancscan/read pancscan/admin]",
                                      scope="pancscan/read pancscan/admin", error="insufficient_scope"),
    }
    assert json.loads(denied.body) == {"message": "Forbidden"}


def test_without_now_the_clock_decides():
    now = time.time()
    token = signed(claims(iat=int(now) - 10, exp=int(now) + 3600))
    assert authorize(token, CONFIG, ("pancscan/read",))["client_id"] == "hospital-a"
    assert denial(signed(claims(iat=int(now) - 7200, exp=int(now) - 3600)), now=None).status == 401


def test_a_token_is_valid_from_its_nbf_second_on():
    assert authorize(signed(claims(nbf=NOW)), CONFIG, ("pancscan/read",), now=NOW)
    assert str(denial(signed(claims(nbf=NOW + 1)))) == "the token is not valid yet"


@pytest.mark.parametrize("nbf", ["yesterday", True])
def test_a_non_numeric_nbf_is_refused(nbf):
    assert str(denial(signed(claims(nbf=nbf)))) == "the token is not valid yet"


def test_a_token_issued_this_second_is_accepted_one_issued_next_second_is_not():
    assert authorize(signed(claims(iat=NOW)), CONFIG, ("pancscan/read",), now=NOW)
    assert str(denial(signed(claims(iat=NOW + 1)))) == "the token was issued in the future"


def test_an_aud_list_admits_when_any_of_its_entries_is_in_the_audience():
    token = signed(claims(aud=["someone-else", "hospital-b"], client_id=None))
    assert authorize(token, CONFIG, ("pancscan/read",), now=NOW)["aud"] == ["someone-else", "hospital-b"]
    assert str(denial(signed(claims(aud=["someone-else"], client_id="hospital-a")))) == (
        "the token does not have a valid audience")


def test_the_event_has_no_scopes_when_the_token_has_none():
    assert event_authorizer(claims(scope=None))["jwt"]["scopes"] is None
    assert event_authorizer(claims(scope=""))["jwt"]["scopes"] is None


# --- images: each greyscale mode, scaled to 0..255 ------------------------------------------------

def png_16bit(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(values, np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_of_mode(mode: str, values: list[list[int]]) -> Image.Image:
    dtype = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I": "<i4"}[mode]
    array = np.array(values, dtype)
    return Image.frombytes(mode, (array.shape[1], array.shape[0]), array.tobytes())


def test_a_16_bit_png_decodes_to_value_times_255_over_65535():
    values = np.array([[0, 1, 1000], [30000, 65534, 65535]])
    decoded = decode_image(png_16bit(values))
    assert decoded.grey.dtype == np.float32
    assert decoded.grey == pytest.approx(values * 255 / 65535, rel=1e-6, abs=0)
    assert decoded.is_colour is False


def test_a_dark_16_bit_png_stays_on_the_16_bit_scale():
    # I;16 is 16-bit whatever its values: 255 is nearly black, not white
    decoded = decode_image(png_16bit(np.array([[0, 100, 255]])))
    assert decoded.grey == pytest.approx(np.array([[0, 100, 255]]) * 255 / 65535, rel=1e-6, abs=0)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I"])
def test_every_16_bit_mode_pillow_may_give_is_scaled_from_65535(mode):
    values = [[0, 1000], [65535, 300]]
    decoded = _to_grey(image_of_mode(mode, values))
    assert decoded.grey.dtype == np.float32
    assert decoded.grey == pytest.approx(np.array(values) * 255 / 65535, rel=1e-6, abs=0)
    assert decoded.is_colour is False


def test_an_I_mode_image_up_to_255_is_read_on_the_8_bit_scale():
    decoded = _to_grey(image_of_mode("I", [[0, 100, 255]]))
    assert np.array_equal(decoded.grey, np.array([[0, 100, 255]], np.float32))
    assert decoded.is_colour is False


def test_an_I_mode_image_reaching_256_is_read_on_the_16_bit_scale():
    decoded = _to_grey(image_of_mode("I", [[0, 100, 256]]))
    assert decoded.grey == pytest.approx(np.array([[0, 100, 256]]) * 255 / 65535, rel=1e-6, abs=0)


def test_an_I_mode_image_beyond_16_bits_is_clipped_to_0_255():
    decoded = _to_grey(image_of_mode("I", [[-20, 0, 70000]]))
    assert np.array_equal(decoded.grey, np.array([[0, 0, 255]], np.float32))


def png_8bit(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_8_bit_greyscale_png_is_not_colour():
    decoded = decode_image(png_8bit(Image.fromarray(np.array([[0, 128, 255]], np.uint8))))
    assert decoded.is_colour is False
    assert np.array_equal(decoded.grey, np.array([[0, 128, 255]], np.float32))


def test_a_greyscale_png_with_alpha_decodes_to_its_grey_channel():
    grey_alpha = np.array([[[10, 0], [128, 100], [250, 255]]], np.uint8)
    decoded = decode_image(png_8bit(Image.fromarray(grey_alpha, "LA")))
    assert np.array_equal(decoded.grey, np.array([[10, 128, 250]], np.float32))
    assert decoded.is_colour is False


def test_a_palette_png_decodes_to_the_luminance_of_its_entries():
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 0, 255, 90, 90, 90] + [0] * (253 * 3))
    img.putdata([0, 1, 2])
    decoded = decode_image(png_8bit(img))
    # ITU-R 601-2 luma (Pillow's L conversion), not the channel mean: red 76, blue 29
    assert np.array_equal(decoded.grey, np.array([[76, 29, 90]], np.float32))


# --- zip_folder -----------------------------------------------------------------------------------

def test_the_folder_zip_holds_the_regular_files_by_relative_path_compressed(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "IM0001.dcm").write_bytes(b"DICM" * 1000)
    (tmp_path / "sub" / "IM0002.dcm").write_bytes(b"second")
    (tmp_path / "link.dcm").symlink_to(tmp_path / "IM0001.dcm")
    with zipfile.ZipFile(io.BytesIO(zip_folder(tmp_path, MB))) as archive:
        assert archive.namelist() == ["IM0001.dcm", "sub/IM0002.dcm"]
        assert archive.read("IM0001.dcm") == b"DICM" * 1000
        assert archive.read("sub/IM0002.dcm") == b"second"
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}


@pytest.mark.parametrize("max_bytes", [MB + 1, 3 * MB + 12345])  # not whole MB: the message rounds down
def test_a_folder_over_max_bytes_is_too_large_in_whole_megabytes(tmp_path, max_bytes):
    (tmp_path / "a.dcm").write_bytes(b"\0" * (max_bytes - 10))
    (tmp_path / "b.dcm").write_bytes(b"\0" * 11)
    with pytest.raises(ScanRejected) as refused:
        zip_folder(tmp_path, max_bytes)
    assert refused.value.code == "too_large"
    assert refused.value.message == f"The folder holds over {max_bytes // MB} MB."


def test_a_folder_of_exactly_max_bytes_is_zipped(tmp_path):
    (tmp_path / "a.dcm").write_bytes(b"\0" * (MB + 1 - 11))
    (tmp_path / "b.dcm").write_bytes(b"\0" * 11)
    with zipfile.ZipFile(io.BytesIO(zip_folder(tmp_path, MB + 1))) as archive:
        assert sum(info.file_size for info in archive.infolist()) == MB + 1


# --- fit_ranges -----------------------------------------------------------------------------------

def test_fitted_ranges_cover_every_feature_widened_by_a_quarter_by_default():
    ranges = fit_ranges([{"a": 0.2, "b": 0.5}, {"a": 0.6, "b": 0.5}, {"a": 0.4, "b": 0.5}])
    assert ranges.keys() == {"a", "b"}
    assert ranges["a"] == pytest.approx([0.1, 0.7])
    assert ranges["b"] == pytest.approx([0.5, 0.5])


def test_a_single_training_slice_gives_point_ranges():
    assert fit_ranges([{"a": 0.3, "b": 0.6}]) == {"a": [0.3, 0.3], "b": [0.6, 0.6]}


def test_fitted_ranges_are_clipped_to_fractions():
    ranges = fit_ranges([{"a": 0.0}, {"a": 0.6}, {"a": 1.0}])
    assert ranges["a"] == [0.0, 1.0]
