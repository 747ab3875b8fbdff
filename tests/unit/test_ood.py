import numpy as np
import pytest

from pancscan.errors import ScanRejected
from pancscan.ood import check_image, check_pancreas, fit_ranges, slice_features


def test_features_measure_intensity_classes():
    image = np.zeros((256, 256), np.float32)  # all air
    image[64:192, 64:192] = 0.5  # a soft-tissue square, a quarter of the image
    features = slice_features(image)
    assert features["soft_tissue_fraction"] == pytest.approx(0.25)
    assert features["air_fraction"] == pytest.approx(0.75)
    assert features["border_air_fraction"] == 1.0
    assert features["saturated_fraction"] == 0.0


def test_fitted_ranges_cover_training_values_with_a_margin():
    ranges = fit_ranges([{"a": 0.2}, {"a": 0.4}], margin=0.5)
    assert ranges["a"] == pytest.approx([0.1, 0.5])


def test_values_outside_the_ranges_are_rejected_as_not_abdominal_ct():
    ranges = {"air_fraction": [0.5, 0.9]}
    check_image({"air_fraction": 0.7}, ranges, is_colour=False)
    with pytest.raises(ScanRejected) as err:
        check_image({"air_fraction": 0.1}, ranges, is_colour=False)
    assert err.value.code == "not_abdominal_ct"


def test_colour_images_are_rejected_whatever_their_statistics():
    with pytest.raises(ScanRejected) as err:
        check_image({}, {}, is_colour=True)
    assert err.value.code == "not_abdominal_ct"


def test_slice_without_a_pancreas_is_rejected():
    check_pancreas(0.9, minimum=0.3)
    with pytest.raises(ScanRejected):
        check_pancreas(0.1, minimum=0.3)
