"""`pancscan evaluate` on class folders of real slices: the shipped model's test tumours and normals."""

import json

import numpy as np
import pytest
from PIL import Image

from pancscan.detection.predict import predict_bytes
from pancscan_cli.main import main
from pancscan_model.reproduction import AUROC_TOLERANCE

pytestmark = pytest.mark.model


def pairwise_auroc(positives: list[float], negatives: list[float]) -> float:
    """P(a tumour slice outscores a normal one), ties counting half: AUROC by its definition."""
    wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives]
    return float(np.mean(wins))


def test_evaluate_on_class_folders_reports_what_the_model_scores(shipped_split, shipped_model, tmp_path, capsys):
    tumours, normals = shipped_split
    data = tmp_path / "data"
    scores = {"cancer": [], "normal": []}
    for folder, slices in (("cancer", tumours[::12][:15]), ("normal", normals[::5][:15])):
        (data / folder).mkdir(parents=True)
        for item in slices:
            path = data / folder / f"{item.patient}-{item.name}.png"
            Image.fromarray(item.image.astype(np.uint8)).save(path)
            scored = predict_bytes(path.read_bytes(), shipped_model)  # the runtime's own path, not evaluate's
            assert scored.status == "complete"
            scores[folder].append(scored.probability)

    assert main(["evaluate", "--data", str(data), "--out", str(tmp_path / "out")]) == 0

    printed = capsys.readouterr().out
    assert "AUROC" in printed and "not a medical device" in printed
    labelled = json.loads((tmp_path / "out" / "report.json").read_text())["labelled"]
    assert labelled["cases"] == 30 and labelled["positives"] == 15
    expected = pairwise_auroc(scores["cancer"], scores["normal"])
    assert expected >= 0.65  # real tumours: the shipped model separates them; a constant model gives 0.5
    assert abs(labelled["auroc"]["value"] - expected) <= AUROC_TOLERANCE  # two runs of the model: its last digits may differ
    threshold = shipped_model.metadata.threshold
    assert abs(labelled["sensitivity"]["value"] - np.mean(np.array(scores["cancer"]) >= threshold)) < 1e-6
    assert abs(labelled["specificity"]["value"] - np.mean(np.array(scores["normal"]) < threshold)) < 1e-6
    lo, hi = labelled["auroc"]["ci95"]
    assert lo < labelled["auroc"]["value"] < hi  # an interval from resampling, not a point
    for plot in ("roc.png", "calibration.png"):
        assert (tmp_path / "out" / plot).read_bytes().startswith(b"\x89PNG")
