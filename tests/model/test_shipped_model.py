"""The shipped model on real NIH slices (skipped where the shared data is absent)."""

import json

import numpy as np
import pytest

from pancscan.cli import main
from pancscan.imaging import to_model_input
from pancscan.predict import predict_model_input
from pancscan_model.lesions import simulate_lesion


@pytest.fixture(scope="module")
def test_patient_slices(nih_slices, shipped_model):
    meta = json.loads(shipped_model.path.with_suffix(".json").read_text())
    return [s for s in nih_slices if s.patient in set(meta["split"]["test"])]


def test_predict_json_on_a_shared_slice_gives_a_complete_result(nih_dir, capsys):
    path = sorted((nih_dir / "images").glob("*.jpg"))[0]
    assert main(["predict", "--json", str(path)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["status"] == "complete", line
    assert line["label"] in {"cancer_detected", "no_cancer_detected"}
    assert 0 <= line["probability"] <= 1
    expected = line["probability"] if line["label"] == "cancer_detected" else 1 - line["probability"]
    assert line["confidence"] == pytest.approx(expected, abs=1e-4)
    assert (line["probability"] >= line["threshold"]) == (line["label"] == "cancer_detected")


def test_real_test_slices_are_not_rejected_in_either_orientation(test_patient_slices, shipped_model):
    for item in test_patient_slices:
        image = to_model_input(item.image)
        assert predict_model_input(image, shipped_model).status == "complete", item.name
        assert predict_model_input(np.ascontiguousarray(image[::-1]), shipped_model).status == "complete", item.name


def test_large_simulated_lesion_raises_the_probability_over_its_twin(test_patient_slices, shipped_model):
    rng = np.random.default_rng(7)
    higher = []
    for item in test_patient_slices[:12]:
        lesioned, _ = simulate_lesion(item.image, item.pancreas, rng, diameter_mm=30, drop_hu=50)
        normal = predict_model_input(to_model_input(item.image), shipped_model).probability
        sick = predict_model_input(to_model_input(lesioned), shipped_model).probability
        higher.append(sick > normal)
    assert np.mean(higher) >= 0.8


def test_heatmap_points_at_the_lesion(test_patient_slices, shipped_model):
    rng = np.random.default_rng(11)
    hits = 0
    for item in test_patient_slices[:10]:
        lesioned, lesion = simulate_lesion(item.image, item.pancreas, rng, diameter_mm=30, drop_hu=50)
        heatmap = shipped_model.run(to_model_input(lesioned)).heatmap
        peak = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        lesion_cells = to_model_input(lesion.mask * 255).reshape(64, 4, 64, 4).max(axis=(1, 3)) > 0.2
        near = np.zeros_like(lesion_cells)
        near[max(peak[0] - 2, 0) : peak[0] + 3, max(peak[1] - 2, 0) : peak[1] + 3] = True
        hits += bool((near & lesion_cells).any())
    # A peak that landed by chance near a 30 mm lesion would do so about 2% of the time; a
    # mis-registered (flipped, shifted) heatmap would score 0. The shipped model scores 6 of 10.
    assert hits >= 5


def test_plain_output_states_the_verdict_and_the_disclaimer_and_heatmap_dir_writes_overlays(nih_dir, tmp_path, capsys):
    path = sorted((nih_dir / "images").glob("*.jpg"))[0]
    assert main(["predict", "--heatmap-dir", str(tmp_path), str(path)]) == 0
    out = capsys.readouterr()
    assert "not a medical device" in out.err
    assert "Cancer detected" in out.out or "No cancer detected" in out.out
    overlay = tmp_path / f"{path.stem}.heatmap.png"
    from PIL import Image

    with Image.open(overlay) as img:
        assert img.mode == "RGB" and img.size == (256, 256)  # the slice as the model saw it
