"""Erasing a tumour (the evaluation's fill), the training fills and transplants, on a made-up slice."""

import numpy as np
import pytest
from scipy import ndimage

from pancscan_model.fill import _regions, _residual, erase_tumour, jpeg_roundtrip, training_fill, transplant, tumour_attenuation


def tissue(seed: int = 0, size: int = 160) -> np.ndarray:
    """Soft tissue of 100 HU with correlated grain (std about 10 HU)."""
    grain = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((size, size)), 1.0)
    return np.clip(100 + grain * 10 / grain.std(), 0, 255).astype(np.float32)


def disc(size: int = 160, centre=(80, 80), radius: int = 14) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


@pytest.fixture
def slice_with_tumour():
    image, tumour = tissue(), disc()
    image[tumour] -= 40  # a hypo-attenuating mass, 60 HU
    return image, tumour


def test_erasing_fills_the_tumour_like_its_surroundings_and_leaves_the_rest(slice_with_tumour):
    image, tumour = slice_with_tumour
    region, ring = _regions(tumour)

    erased = erase_tumour(image, tumour, seed=1)

    assert abs(erased[tumour].mean() - image[ring].mean()) < 4  # the mass at 60 HU is gone
    inside, around = _residual(erased)[tumour].std(), _residual(image)[ring].std()
    assert 0.7 < inside / around < 1.3  # noise of the same strength, not a smooth patch
    far = ~ndimage.binary_dilation(region, iterations=16)
    assert np.array_equal(erased[far], jpeg_roundtrip(image)[far])  # JPEG blocks away from it are untouched
    assert np.array_equal(erased, erase_tumour(image, tumour, seed=1))


def test_the_training_fill_also_removes_the_tumour_but_is_not_the_evaluation_fill(slice_with_tumour):
    image, tumour = slice_with_tumour
    _, ring = _regions(tumour)
    rng = np.random.default_rng(2)

    filled = [training_fill(image, tumour, rng) for _ in range(4)]

    for result in filled:
        assert abs(result[tumour].mean() - image[ring].mean()) < 6
        assert not np.allclose(jpeg_roundtrip(result)[tumour], erase_tumour(image, tumour, seed=1)[tumour], atol=2)


def test_a_transplanted_tumour_darkens_the_host_pancreas_where_its_mask_says(slice_with_tumour):
    image, tumour = slice_with_tumour
    delta, mask = tumour_attenuation(image, tumour)
    host, pancreas = tissue(seed=5), disc(centre=(70, 90), radius=30)

    placed = transplant(host, pancreas, delta, mask, np.random.default_rng(3))

    assert placed is not None
    result, where = placed
    assert where.sum() == tumour.sum()
    assert (where & pancreas).sum() >= 0.7 * where.sum()
    assert (host[where] - result[where]).mean() > 25  # about the 40 HU the mass was darker
    away = ~ndimage.binary_dilation(where, iterations=8)
    assert np.allclose(result[away], host[away], atol=0.01)


def test_a_tumour_that_fits_nowhere_is_not_transplanted(slice_with_tumour):
    image, tumour = slice_with_tumour
    delta, mask = tumour_attenuation(image, tumour)
    tiny_pancreas = disc(radius=3)
    assert transplant(tissue(seed=6), tiny_pancreas, delta, mask, np.random.default_rng(0)) is None
