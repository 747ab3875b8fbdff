"""A series' heatmap and slice image belong to its most suspicious slice, through to the stored PNGs."""

import io

import numpy as np
import pytest
from PIL import Image

from pancscan.detection.predict import predict_model_input, predict_series
from pancscan.reading.imaging import to_model_input
from pancscan.service.inference import result_pngs
from pancscan_model.reproduction import SCORE_TOLERANCE


def test_the_heatmap_and_the_slice_image_are_those_of_the_most_suspicious_slice(shipped_split, shipped_model):
    tumours, normals = shipped_split
    # normal slices around one real tumour slice, which is neither first nor last
    images = [to_model_input(s.image) for s in (normals[0], normals[5], tumours[0], normals[10], normals[15])]
    singles = [predict_model_input(image, shipped_model) for image in images]
    assert all(single.status == "complete" for single in singles)
    top = int(np.argmax([single.probability for single in singles]))
    assert top not in (0, len(images) - 1)  # else a rule that took an end slice would pass

    result = predict_series(images, shipped_model, {"format": "dicom_series"})

    assert result.series["most_suspicious_slice"] == top
    assert np.array_equal(result.image, images[top])
    # model arithmetic: the same within what kernels and batching change (another slice's differs by far more)
    assert np.abs(result.heatmap - singles[top].heatmap).max() <= SCORE_TOLERANCE
    assert result.series["slice_probabilities"] == pytest.approx([single.probability for single in singles], abs=5e-5 + SCORE_TOLERANCE)
    assert all(p == round(p, 4) for p in result.series["slice_probabilities"])  # four decimals, as the page shows them
    pngs = result_pngs(result)
    stored_slice = np.asarray(Image.open(io.BytesIO(pngs["slice_png"])), np.float32) / 255
    assert np.abs(stored_slice - images[top]).max() <= 0.5 / 255 + 1e-6
    stored_heatmap = np.asarray(Image.open(io.BytesIO(pngs["heatmap_png"])), np.float32) / 255
    assert np.abs(stored_heatmap - np.clip(singles[top].heatmap, 0, 1)).max() <= 0.5 / 255 + 1e-6


def test_every_scored_slice_keeps_its_own_image_and_heatmap_in_order(shipped_split, shipped_model):
    tumours, normals = shipped_split
    images = [to_model_input(s.image) for s in (normals[1], tumours[1], normals[2])]
    blank = np.zeros_like(images[0])  # outside the abdomen: fails the checks, so not scored
    result = predict_series([images[0], blank, images[1], images[2]], shipped_model, {"format": "dicom_series"})

    assert [s.index for s in result.scored_slices] == [0, 2, 3]
    assert result.series["slice_probabilities"][1] is None
    for scored, image in zip(result.scored_slices, images):
        assert np.array_equal(scored.image, image)
        single = predict_model_input(image, shipped_model)
        assert np.abs(scored.heatmap - single.heatmap).max() <= SCORE_TOLERANCE
    assert result.series["slice_threshold"] == round(shipped_model.metadata.threshold, 4)
