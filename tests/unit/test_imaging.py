import numpy as np
import pytest
from PIL import Image, ImageFile

from pancscan.errors import ScanRejected
from pancscan.reading.imaging import decode_image, hu_to_display, to_model_input
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
