"""The lesion simulator on a phantom (no shared data needed): a uniform 'pancreas' in fat."""

import numpy as np
import pytest
from scipy import ndimage

from pancscan_model.lesions import UNITS_PER_HU, measured_diameter_mm, simulate_lesion


def phantom(seed: int = 0):
    rng = np.random.default_rng(seed)
    image = np.full((256, 256), 40.0, np.float32)  # fat
    yy, xx = np.mgrid[0:256, 0:256]
    pancreas = ((yy - 128) / 40.0) ** 2 + ((xx - 128) / 90.0) ** 2 <= 1
    image[pancreas] = 170.0  # enhancing parenchyma, about 107 HU
    image += rng.normal(0, 4.0, image.shape).astype(np.float32)
    return image, pancreas


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("style", ["train", "heldout"])
def test_lesion_lies_inside_the_pancreas_without_mass_effect(seed, style):
    image, pancreas = phantom(seed)
    _, lesion = simulate_lesion(image, pancreas, np.random.default_rng(seed), style=style, mass_effect=False)
    inside = lesion.mask > 0.5
    assert inside.sum() > 0
    assert not (inside & ~pancreas).any()


@pytest.mark.parametrize("drop_hu", [15.0, 40.0, 70.0])
def test_lesion_is_darker_than_parenchyma_by_about_the_requested_hu(drop_hu):
    image, pancreas = phantom(1)
    drops = []
    for seed in range(6):
        out, lesion = simulate_lesion(image, pancreas, np.random.default_rng(seed), diameter_mm=20, drop_hu=drop_hu, mass_effect=False)
        core = lesion.mask >= 0.9 * lesion.mask.max()
        drops.append(np.mean((image[core] - out[core]) / lesion.mask[core]) / UNITS_PER_HU)
    # a necrotic centre may add up to half the drop; rims and texture change it a little
    assert drop_hu * 0.8 <= np.median(drops) <= drop_hu * 1.6


def test_image_outside_the_lesion_and_duct_region_is_unchanged():
    image, pancreas = phantom(2)
    out, lesion = simulate_lesion(image, pancreas, np.random.default_rng(5), diameter_mm=12, mass_effect=False)
    far = ndimage.distance_transform_edt(lesion.mask < 0.01) > 80
    assert np.array_equal(out[far], np.clip(image, 0, 255)[far])


def test_requested_size_is_reflected_in_the_measured_diameter():
    image, pancreas = phantom(3)
    small = [simulate_lesion(image, pancreas, np.random.default_rng(s), diameter_mm=8, mass_effect=False)[1].diameter_mm for s in range(5)]
    large = [simulate_lesion(image, pancreas, np.random.default_rng(s), diameter_mm=35, mass_effect=False)[1].diameter_mm for s in range(5)]
    assert 4 <= np.median(small) <= 13
    assert np.median(large) >= 2.5 * np.median(small)


def test_feret_diameter_of_a_disc():
    yy, xx = np.mgrid[0:100, 0:100]
    disc = (yy - 50) ** 2 + (xx - 50) ** 2 <= 20**2
    assert measured_diameter_mm(disc, spacing_mm=1.0) == pytest.approx(41, abs=1.5)


def test_same_seed_gives_the_same_lesion():
    image, pancreas = phantom(4)
    a = simulate_lesion(image, pancreas, np.random.default_rng(9))[0]
    b = simulate_lesion(image, pancreas, np.random.default_rng(9))[0]
    assert np.array_equal(a, b)
