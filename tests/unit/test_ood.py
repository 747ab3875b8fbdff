import numpy as np
import pytest

from pancscan.errors import ScanRejected
from pancscan.detection.ood import check_image, check_pancreas, fit_ranges, slice_features


def test_features_measure_intensity_classes():
    image = np.zeros((256, 256), np.float32)  # all at or below 0 HU: air or fat
    image[64:192, 64:192] = 100 / 255  # soft tissue (100 HU), a quarter of the image
    image[0:32, 0:32] = 1.0  # bone (at or above 255 HU), a 64th
    features = slice_features(image)
    assert features["soft_tissue_fraction"] == pytest.approx(0.25)
    assert features["zero_fraction"] == pytest.approx(0.75 - 1 / 64)
    assert features["border_zero_fraction"] == pytest.approx(1 - 2 * 32 * 6 / (4 * 256 * 6))  # the bone touches two edges
    assert features["saturated_fraction"] == pytest.approx(1 / 64)


def test_fitted_ranges_cover_training_values_with_a_margin():
    ranges = fit_ranges([{"a": 0.2}, {"a": 0.4}], margin=0.5)
    assert ranges["a"] == pytest.approx([0.1, 0.5])


def test_values_outside_the_ranges_are_rejected_as_not_abdominal_ct():
    ranges = {"zero_fraction": [0.5, 0.9]}
    check_image({"zero_fraction": 0.7}, ranges, is_colour=False)
    with pytest.raises(ScanRejected) as err:
        check_image({"zero_fraction": 0.1}, ranges, is_colour=False)
    assert err.value.code == "not_abdominal_ct"


def test_colour_images_are_rejected_whatever_their_statistics():
    with pytest.raises(ScanRejected) as err:
        check_image({}, {}, is_colour=True)
    assert err.value.code == "not_abdominal_ct"


def test_slice_without_a_pancreas_is_rejected():
    check_pancreas(0.9, minimum=0.3)
    with pytest.raises(ScanRejected):
        check_pancreas(0.1, minimum=0.3)
