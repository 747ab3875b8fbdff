"""`pancscan evaluate` on a class-folder data set made from real slices and simulated lesions."""

import json

import numpy as np
from PIL import Image

from pancscan.cli import main
from pancscan_model.lesions import simulate_lesion


def test_evaluate_on_class_folders_writes_report_and_plots(nih_slices, tmp_path, capsys):
    rng = np.random.default_rng(3)
    data = tmp_path / "data"
    (data / "normal").mkdir(parents=True)
    (data / "cancer").mkdir()
    for item in nih_slices[:40:4]:
        Image.fromarray(item.image.astype(np.uint8)).save(data / "normal" / f"{item.name}.png")
        lesioned, _ = simulate_lesion(item.image, item.pancreas, rng, diameter_mm=30, drop_hu=60)
        Image.fromarray(lesioned.astype(np.uint8)).save(data / "cancer" / f"{item.name}.png")

    assert main(["evaluate", "--data", str(data), "--out", str(tmp_path / "out")]) == 0

    printed = capsys.readouterr().out
    assert "AUROC" in printed and "not a medical device" in printed
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    labelled = report["labelled"]
    assert labelled["cases"] == 20 and labelled["positives"] == 10
    lo, hi = labelled["auroc"]["ci95"]
    assert 0.0 <= lo <= labelled["auroc"]["value"] <= hi <= 1.0
    for plot in ("roc.png", "calibration.png"):
        assert (tmp_path / "out" / plot).read_bytes().startswith(b"\x89PNG")
