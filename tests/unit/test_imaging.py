"""Reading PNG and JPEG slices (pancscan.reading.imaging): each image mode decoded, colour told apart,
the HU window and the model input."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from pancscan.errors import ScanRejected
from pancscan.reading.imaging import _to_grey, decode_image, hu_to_display, to_model_input
from tests.conftest import jpeg_bytes, png_bytes, png_claiming


def test_hounsfield_units_are_clipped_to_0_255_the_training_slices_convention():
    display = hu_to_display(np.array([-1000.0, -100.0, 0.0, 40.0, 98.0, 255.0, 3000.0]))
    assert display == pytest.approx([0.0, 0.0, 0.0, 40.0, 98.0, 255.0, 255.0])


def test_greyscale_png_decodes_to_the_same_intensities():
    image = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    decoded = decode_image(png_bytes(image))
    assert not decoded.is_colour
    assert np.array_equal(decoded.grey, image.astype(np.float32))


def test_rgb_jpeg_with_equal_channels_is_greyscale_not_colour():
    grey = np.random.default_rng(0).integers(0, 255, (128, 128)).astype(np.uint8)
    decoded = decode_image(jpeg_bytes(np.stack([grey] * 3, axis=2)))
    assert not decoded.is_colour
    assert decoded.grey.shape == (128, 128)


def test_colour_image_is_flagged_as_colour():
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[..., 2] = 30
    assert decode_image(png_bytes(rgb)).is_colour


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", bytes(range(256)) * 10, b"GIF89a" + b"\0" * 100],
    ids=["empty", "text", "random", "gif"],
)
def test_non_png_jpeg_bytes_are_rejected_as_unreadable(data):
    with pytest.raises(ScanRejected) as err:
        decode_image(data)
    assert err.value.code == "unreadable_file"


def test_truncated_png_is_rejected_as_unreadable():
    data = png_bytes(np.random.default_rng(1).integers(0, 255, (256, 256)))
    with pytest.raises(ScanRejected) as err:
        decode_image(data[: len(data) // 2])
    assert err.value.code == "unreadable_file"


@pytest.mark.parametrize("width, height", [(4097, 1), (1, 4097), (4097, 4097), (100_000, 100_000)])
def test_png_claiming_more_than_4096_pixels_a_side_is_too_large_before_decoding(width, height, monkeypatch):
    def no_decoding(self):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ScanRejected) as err:
        decode_image(png_claiming(width, height))
    assert err.value.code == "too_large"


def test_png_of_4096_pixels_a_side_is_within_the_cap():
    # 4096 x 1 claimed over 8 x 8 pixels: past the cap, so it fails only when decoding (truncated)
    with pytest.raises(ScanRejected) as err:
        decode_image(png_claiming(4096, 1))
    assert err.value.code == "unreadable_file"


def test_model_input_is_256_square_in_unit_range():
    grey = np.full((512, 512), 255.0, np.float32)
    grey[:256] = 0
    x = to_model_input(grey)
    assert x.shape == (256, 256) and x.dtype == np.float32
    assert x[:120].max() == 0.0 and x[136:].min() == pytest.approx(1.0)


def test_sixteen_bit_png_is_scaled_to_display_range():
    image = np.full((32, 32), 65535, np.uint16)
    img = Image.fromarray(image)
    import io

    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    assert decode_image(buffer.getvalue()).grey.max() == pytest.approx(255.0)


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


def test_an_image_over_the_limit_is_refused_with_its_size_in_the_message():
    with pytest.raises(ScanRejected) as refused:
        decode_image(png_claiming(4097, 12))
    assert refused.value.message == "Image is 4097x12 pixels; the limit is 4096 a side."
    with pytest.raises(ScanRejected) as bomb:  # Pillow's own check refuses it first
        decode_image(png_claiming(100_000, 100_000))
    assert bomb.value.message == "Image is over 4096 pixels a side."
