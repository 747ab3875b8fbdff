"""The CT checks (pancscan.detection.ood): the features of a slice, the ranges fitted on training slices, and
the rejections users read."""

import numpy as np
import pytest

from pancscan.detection.ood import check_image, check_pancreas, fit_ranges, slice_features
from pancscan.errors import ScanRejected
from pancscan.reading.imaging import to_model_input


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
