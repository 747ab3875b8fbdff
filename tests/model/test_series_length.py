"""A CT series at real length: the shipped model's test cases and patients rebuilt as DICOM series
1.5 mm apart (pancscan_model.realistic_series), through the whole runtime path."""

import numpy as np
import pytest

from pancscan.detection.predict import predict_bytes
from pancscan_model.dicom_series import hu_from_slice, series_zip
from pancscan_model.realistic_series import LENGTH_SPACING_MM, among, at_spacing, groups_of

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def test_series(shipped_split):
    """(slices, test tumour cases, test normal patients): cases and patients as slice indices."""
    tumours, normals = shipped_split
    slices = tumours + normals
    groups = groups_of(slices)
    cases = {g: c for g, c in sorted(groups.items()) if slices[c[0]].name.startswith("MSD_")}
    patients = {g: c for g, c in sorted(groups.items()) if not slices[c[0]].name.startswith("MSD_")}
    return slices, cases, patients


def as_dicom(slices, indices: list[int]) -> bytes:
    hu = {i: hu_from_slice(slices[i].image) for i in set(indices)}
    return series_zip([hu[i] for i in indices], thickness_mm=LENGTH_SPACING_MM)


def rebuilt(slices, case: list[int]) -> list[int]:
    return at_spacing(case, slices, LENGTH_SPACING_MM)


def test_a_300_slice_series_of_test_normal_slices_is_called_normal(test_series, shipped_model):
    # every test patient's pancreas one after another: 300 slices, each showing a normal pancreas
    slices, _, patients = test_series
    first, *others = patients.values()
    indices = among(rebuilt(slices, first), [rebuilt(slices, p) for p in others], 300)
    assert len(indices) == 300 and len({slices[i].patient for i in indices}) >= 5

    result = predict_bytes(as_dicom(slices, indices), shipped_model)

    assert result.status == "complete" and result.series["slices"] == 300
    assert result.label == "no_cancer_detected", result.probability


def test_the_test_tumour_case_found_most_clearly_alone_is_still_found_among_290_normal_slices(test_series, shipped_model):
    # a longer series costs sensitivity (the card's series at real length: about half the cases found
    # alone are lost among 300 slices), but a clear tumour must not be drowned by the padding
    slices, cases, patients = test_series
    padding = [rebuilt(slices, p) for p in patients.values()]
    alone = {name: predict_bytes(as_dicom(slices, rebuilt(slices, case)), shipped_model) for name, case in cases.items()}
    clearest = max(alone, key=lambda name: alone[name].probability)
    assert alone[clearest].label == "cancer_detected", "no test case is found on its own"
    found_alone = rebuilt(slices, cases[clearest])

    indices = among(found_alone, padding, len(found_alone) + 290)
    result = predict_bytes(as_dicom(slices, indices), shipped_model)

    assert result.series["slices"] == len(found_alone) + 290
    assert result.label == "cancer_detected", result.probability
    top = result.series["most_suspicious_slice"]
    assert slices[indices[top]].name.startswith("MSD_")  # the verdict comes from the tumour, not the padding


def test_a_thin_series_gets_the_verdict_of_the_same_case_at_the_grid_spacing(test_series, shipped_model):
    # sampled every 2.5 mm, a 0.8 or 1.5 mm series is scored on the slices a 2.5 mm one has
    slices, cases, _ = test_series
    case = next(iter(cases.values()))
    probabilities = []
    for spacing in (0.8, 1.5, 2.5):
        indices = at_spacing(case, slices, spacing)
        result = predict_bytes(series_zip([hu_from_slice(slices[i].image) for i in indices], thickness_mm=spacing), shipped_model)
        probabilities.append(result.probability)
    assert np.ptp(probabilities) <= 0.02, probabilities
