"""Head, body or tail: a tumour's or a false alarm's place against the spine's column."""

import numpy as np
import pytest

from pancscan_model.places import PIXEL_MM, place_of_column, place_of_mask, place_of_peak, spine_column

SPINE = 270  # the midline of the slice below, off the body's centre (256) as in a patient lying off-centre


def disc(shape, row, col, radius):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - row) ** 2 + (cols - col) ** 2 <= radius**2


def abdomen() -> np.ndarray:
    """A body (muscle 60, fat 0 inside), a vertebra behind its centre, kidneys on both sides of it,
    ribs, and in front an aorta and bright bowel to one side (not mirrored)."""
    shape = (512, 512)
    rows, cols = np.ogrid[:512, :512]
    image = np.where(((rows - 256) / 180) ** 2 + ((cols - 256) / 230) ** 2 <= 1, 60.0, 0.0)
    image[((rows - 256) / 170) ** 2 + ((cols - 256) / 220) ** 2 <= 1] = 0.0  # subcutaneous fat
    image[((rows - 300) / 120) ** 2 + ((cols - 256) / 160) ** 2 <= 1] = 80.0  # organs
    for part, value in ((disc(shape, 350, SPINE, 28), 255), (disc(shape, 395, SPINE, 10), 255),
                        (disc(shape, 340, SPINE - 90, 30), 240), (disc(shape, 340, SPINE + 90, 30), 240),
                        (disc(shape, 380, SPINE - 150, 8), 255), (disc(shape, 380, SPINE + 150, 8), 255),
                        (disc(shape, 300, SPINE + 25, 12), 230), (disc(shape, 210, 180, 20), 250)):
        image[part] = value
    return image


def test_the_spine_is_found_by_the_mirror_symmetry_of_the_bone_behind_the_body_centre():
    assert spine_column(abdomen()) == pytest.approx(SPINE, abs=1)


def test_without_bone_the_body_centre_stands_for_the_spine_and_an_empty_image_for_its_middle():
    image = abdomen()
    image[image >= 200] = 80.0
    assert spine_column(image) == pytest.approx(256, abs=1)
    assert spine_column(np.zeros((100, 120))) == 60


@pytest.mark.parametrize(("offset_mm", "place"), [(-30, "head"), (-0.5, "head"), (0, "body"), (24.5, "body"),
                                                    (25.0, "body"), (25.5, "tail"), (80, "tail")])
def test_places_by_their_distance_to_the_patients_left_of_the_spine(offset_mm, place):
    assert place_of_column(SPINE + offset_mm / PIXEL_MM, SPINE) == place


def test_a_tumour_takes_the_place_of_its_centre():
    image = abdomen()
    assert place_of_mask(image, disc(image.shape, 250, SPINE - 40, 12)) == "head"
    assert place_of_mask(image, disc(image.shape, 250, SPINE + 15, 12)) == "body"
    # a long tumour from the body into the tail counts where its centre lies
    assert place_of_mask(image, disc(image.shape, 250, SPINE + 60, 4) | disc(image.shape, 250, SPINE + 20, 4)) == "tail"


def test_a_false_alarm_is_placed_in_the_pancreas_or_outside_it():
    image = abdomen()
    pancreas = np.zeros(image.shape, bool)
    pancreas[240:260, SPINE - 60: SPINE + 100] = True
    heatmap = np.zeros((64, 64))
    heatmap[250 // 8, (SPINE + 80) // 8] = 0.9  # a cell of 8 x 8 pixels, its centre inside the pancreas
    assert place_of_peak(image, heatmap, pancreas, margin_px=0) == "tail"
    assert place_of_peak(image, heatmap, None, margin_px=0) == "unknown"
    heatmap[250 // 8 + 5, (SPINE - 40) // 8] = 1.0  # the hottest cell: its centre 33 px below the pancreas
    assert place_of_peak(image, heatmap, pancreas, margin_px=6) == "outside the pancreas"
    assert place_of_peak(image, heatmap, pancreas, margin_px=40) == "head"  # within the grown mask
