"""The shipped model on real slices of its test cases and patients (skipped where the shared data is absent).

The thresholds below sit under what the shipped model measures (MODEL_CARD.md) by a margin for the
few slices used here; a model that looked at the wrong place, a flipped heatmap or a broken input
conversion falls far below them."""

import json

import numpy as np
import pytest

from pancscan.detection.predict import label_confidence, predict_model_input
from pancscan.reading.imaging import to_model_input
from pancscan_cli.main import main
from pancscan_model.evaluate import peak_on_tumour

pytestmark = pytest.mark.model
from pancscan_model.fill import erase_tumour, jpeg_roundtrip

# Measured on these 84 slices with the shipped model 0.3.0: 0.76 of tumour slices outscore their erased
# twin (a model blind to the tumour: about 0.5); the heatmap peak on the tumour in 0.63 (0.61 upside
# down; a peak at random: 0.4%). The card has the full test figures.
MIN_TWIN_WINS = 0.62
MIN_PEAK_ON_TUMOUR = 0.45


@pytest.fixture(scope="module")
def test_tumours(shipped_split):
    tumours, _ = shipped_split
    return tumours[::4]  # 84 slices of the 41 test cases


def test_predict_json_on_a_shared_tumour_slice_gives_a_complete_result(msd_dir, shipped_split, capsys):
    path = msd_dir / "images" / f"{shipped_split[0][0].name}.jpg"  # as stored: upside down
    assert main(["predict", "--json", str(path)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["status"] == "complete", line
    assert line["label"] in {"cancer_detected", "no_cancer_detected"}
    assert (line["probability"] >= line["threshold"]) == (line["label"] == "cancer_detected")
    assert line["confidence"] == pytest.approx(label_confidence(line["probability"], line["threshold"]), abs=1e-4)
    assert line["confidence"] >= 0.5


def test_real_test_slices_of_both_hospitals_are_rarely_rejected_in_either_orientation(shipped_split, shipped_model):
    inputs = [to_model_input(s.image) for s in shipped_split[0] + shipped_split[1]]
    rejected = [predict_model_input(x, shipped_model).status == "rejected" for x in inputs + [np.ascontiguousarray(x[::-1]) for x in inputs]]
    assert np.mean(rejected) <= 0.02


def test_tumour_slices_outscore_the_same_slices_with_the_tumour_erased(test_tumours, shipped_model):
    wins = []
    for k, item in enumerate(test_tumours):
        tumour = shipped_model.run(to_model_input(jpeg_roundtrip(item.image))).score_logit
        erased = shipped_model.run(to_model_input(erase_tumour(item.image, item.tumour, seed=k))).score_logit
        wins.append(tumour > erased)
    assert np.mean(wins) >= MIN_TWIN_WINS


@pytest.mark.parametrize("upside_down", [False, True])
def test_the_heatmap_peak_lies_on_real_tumours_in_either_orientation(test_tumours, shipped_model, upside_down):
    hits = []
    for item in test_tumours:
        image = to_model_input(item.image)
        heatmap = shipped_model.run(np.ascontiguousarray(image[::-1]) if upside_down else image).heatmap
        hits.append(peak_on_tumour(heatmap[::-1] if upside_down else heatmap, item.tumour, margin_px=6))
    # a peak placed at random lands within 5 mm of these tumours in about 2% of slices
    assert np.mean(hits) >= MIN_PEAK_ON_TUMOUR


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


def test_the_shipped_split_keeps_each_case_and_patient_in_one_part_and_is_reproducible(shipped_model, msd_slices, nih_slices):
    from pancscan_model.data import make_splits

    metadata = json.loads(shipped_model.path.with_suffix(".json").read_text())
    config = metadata["training"]["config"]
    again = make_splits(msd_slices, nih_slices, config["seed"], config["msd_val"], config["msd_test"], config["nih_val"], config["nih_test"])
    if config["folds"]:
        again = again.cross_fitted(config["folds"], config["seed"])
    assert again.as_json() == metadata["split"]
    for collection in ("msd", "nih"):
        parts = [set(ids) for ids in metadata["split"][collection].values()]
        assert sum(map(len, parts)) == len(set().union(*parts))
        folds = [set(ids) for ids in metadata["split"]["folds"][collection]]
        assert sum(map(len, folds)) == len(set().union(*folds)) and set().union(*folds) == set(metadata["split"][collection]["train"])
