"""The scan rule applied to a series (pancscan.detection.predict): which slices count, the summary a
result carries, and the probability each rule gives, exactly, with a stand-in model whose logits are
written into its input images."""

import numpy as np
import pytest

from pancscan.detection.model import ModelMetadata, RawOutput, SeriesRule, SliceModel, platt
from pancscan.detection.predict import predict_model_input, predict_series
from pancscan.detection.series import extent_surprise, scored_extent_mm

SLICE_THRESHOLD = 0.6123456


class LogitsInPixels(SliceModel):
    """A model whose slice logit is the image's first pixel and whose pancreas is its second (0: none found)."""

    def __init__(self, series: SeriesRule | None):
        self.metadata = ModelMetadata(version="fake-1", input_size=8, window_center_hu=127.5, window_width_hu=255.0,
                                      threshold=SLICE_THRESHOLD, platt_a=1.0, platt_b=0.0, ood_ranges={}, pancreas_min=0.5,
                                      series=series)

    def run(self, image):
        return RawOutput(score_logit=float(image[0, 0]), heatmap=np.full((64, 64), image[0, 0] / 10, np.float32),
                         pancreas_max=float(image[0, 1]))


def slice_(logit: float, pancreas: float = 1.0) -> np.ndarray:
    image = np.full((8, 8), 0.5, np.float32)
    image[0, 0], image[0, 1] = logit, pancreas
    return image


STRETCH = SeriesRule("strongest_stretch", platt_a=0.5, platt_b=-0.2, threshold=0.55, grid_mm=2.5, window_mm=5.0, null_mean=-1.5, null_sd=1.0)
# six slices, the scanner's positions (not from 0, one a little off the grid); slices 0, 2, 3 and 5 sampled,
# slice 5 without pancreas: scored are 0, 2 and 3
POSITIONS = (10.0, 12.504, 15.0, 17.5, 20.0, 22.5)
SAMPLED = (0, 2, 3, 5)
IMAGES = [slice_(-1.0), slice_(2.0), slice_(1.0), slice_(-0.5, pancreas=0.0)]


def sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def test_the_strongest_stretch_is_judged_against_the_scored_extent_and_its_summary_is_exact():
    result = predict_series(IMAGES, LogitsInPixels(STRETCH), {"format": "dicom_series"}, POSITIONS, SAMPLED)
    # the 5 mm stretch around z = 15 holds slices 2 and 3: mean logit 1.5; its top slice is 2
    extent = scored_extent_mm(np.array([10.0, 15.0, 17.5, 22.5]), [True, True, True, False])
    probability = float(platt(extent_surprise(1.5, extent, 5.0, -1.5, 1.0), 0.5, -0.2))
    assert result.series == {
        "slices": 6, "sampled_slices": 4, "scored_slices": 3, "most_suspicious_slice": 2, "strongest_stretch": [2, 3],
        "slice_probabilities": [round(sigmoid(-1.0), 4), None, round(sigmoid(2.0), 4), round(sigmoid(1.0), 4), None, None],
        "slice_threshold": 0.6123, "positions_mm": [0.0, 2.5, 5.0, 7.5, 10.0, 12.5], "grid_mm": 2.5, "window_mm": 5.0}
    assert result.probability == pytest.approx(probability, abs=1e-12)
    assert (result.status, result.threshold, result.model_version, result.technical) == ("complete", 0.55, "fake-1", {"format": "dicom_series"})
    assert result.label == ("cancer_detected" if probability >= 0.55 else "no_cancer_detected")
    assert np.array_equal(result.image, IMAGES[1]) and np.all(result.heatmap == np.float32(0.2))
    assert [(s.index, float(s.image[0, 0])) for s in result.scored_slices] == [(0, -1.0), (2, 2.0), (3, 1.0)]


def test_without_a_null_the_stretch_logit_itself_is_calibrated():
    rule = SeriesRule("strongest_stretch", platt_a=0.5, platt_b=-0.2, threshold=0.55, grid_mm=2.5, window_mm=5.0)
    result = predict_series(IMAGES, LogitsInPixels(rule), None, POSITIONS, SAMPLED)
    assert result.probability == pytest.approx(sigmoid(0.5 * 1.5 - 0.2), abs=1e-12)


@pytest.mark.parametrize("rule, score", [("max", 2.0), ("top2_mean", 1.5), ("mean", 2.0 / 3)])
def test_the_rules_of_older_models_take_the_scored_slices_logits_only(rule, score):
    legacy = SeriesRule(rule, platt_a=0.5, platt_b=-0.2, threshold=0.55)
    result = predict_series(IMAGES, LogitsInPixels(legacy), None, POSITIONS, SAMPLED)
    assert result.probability == pytest.approx(sigmoid(0.5 * score - 0.2), abs=1e-12)
    assert (result.series["strongest_stretch"], result.series["most_suspicious_slice"]) == ([0, 3], 2)


def test_a_model_without_a_series_rule_calibrates_its_top_slice_as_a_slice():
    result = predict_series(IMAGES, LogitsInPixels(None), None, POSITIONS, SAMPLED)
    assert (result.probability, result.threshold) == (pytest.approx(sigmoid(2.0), abs=1e-12), SLICE_THRESHOLD)
    assert (result.series["grid_mm"], result.series["window_mm"], result.label) == (0.0, 0.0, "cancer_detected")
    assert result.series["strongest_stretch"] == [0, 3]  # the top slice among all scored ones


def test_a_probability_exactly_at_the_threshold_is_called_cancer_detected_with_confidence_one_half():
    at = SeriesRule("max", platt_a=1.0, platt_b=0.0, threshold=0.5)
    result = predict_series([slice_(0.0)], LogitsInPixels(at))
    assert (result.probability, result.label, result.confidence) == (0.5, "cancer_detected", 0.5)


def test_a_scan_is_predicted_as_a_series_at_its_positions_and_samples_or_as_one_image():
    from pancscan.detection.predict import predict_scan
    from pancscan.reading.scan_input import ScanInput

    series = ScanInput(IMAGES, True, technical={"format": "dicom_series"}, positions_mm=POSITIONS, sampled=SAMPLED)
    assert predict_scan(series, LogitsInPixels(STRETCH)).series == predict_series(IMAGES, LogitsInPixels(STRETCH), None,
                                                                                  POSITIONS, SAMPLED).series
    colour = ScanInput([slice_(0.3)], False, is_colour=True, technical={"format": "png"})
    refused = predict_scan(colour, LogitsInPixels(None))
    assert (refused.status, refused.reason.code, refused.technical) == ("rejected", "not_abdominal_ct", {"format": "png"})


def test_without_positions_or_sampling_every_slice_counts_a_typical_spacing_apart():
    result = predict_series([slice_(0.0), slice_(1.0), slice_(-2.0)], LogitsInPixels(STRETCH))
    assert result.series["positions_mm"] == [0.0, 2.5, 5.0]
    assert (result.series["slices"], result.series["sampled_slices"], result.series["scored_slices"]) == (3, 3, 3)


def test_a_series_with_no_scorable_slice_is_refused_as_not_abdominal_ct():
    result = predict_series([slice_(1.0, pancreas=0.0)] * 2, LogitsInPixels(STRETCH), {"format": "nifti"})
    assert result.as_dict() == {
        "status": "rejected", "label": None, "probability": None, "confidence": None, "threshold": 0.6123,
        "model_version": "fake-1", "series": None, "technical": {"format": "nifti"},
        "reason": {"code": "not_abdominal_ct", "message": "No slice of this series looks like abdominal CT showing the pancreas."}}


def test_one_slice_keeps_its_image_and_a_colour_image_is_refused():
    model = LogitsInPixels(None)
    image = slice_(0.3)
    assert np.array_equal(predict_model_input(image, model).image, image)
    refused = predict_model_input(image, model, is_colour=True)
    assert (refused.status, refused.reason.code) == ("rejected", "not_abdominal_ct")


def test_a_result_shows_four_decimals():
    result = predict_model_input(slice_(0.123456), LogitsInPixels(None)).as_dict()
    probability = sigmoid(0.123456)
    confidence = 0.5 + 0.5 * (SLICE_THRESHOLD - probability) / SLICE_THRESHOLD
    assert (result["probability"], result["confidence"], result["threshold"]) == (round(probability, 4), round(confidence, 4), 0.6123)


def test_a_file_is_read_on_the_grid_of_the_models_series_rule():
    from dataclasses import replace

    from pancscan.detection.predict import predict_bytes
    from pancscan.detection.series import sample_on_grid
    from tests.dicom_factory import series_zip

    data = series_zip([np.full((32, 32), 40.0)] * 10, spacing=0.5)
    on_grid = len(sample_on_grid([0.5 * k for k in range(10)], 2.5))
    for rule, sampled in ((STRETCH, on_grid), (None, 10)):  # a model without a series rule reads every slice
        model = LogitsInPixels(rule)
        model.metadata = replace(model.metadata, pancreas_min=-1.0)  # every slice scored
        assert predict_bytes(data, model).series["sampled_slices"] == sampled
    assert on_grid < 10
