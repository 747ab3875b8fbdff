"""The scan-level rule: which aggregate of slice scores, calibrated how, thresholded where.

Pseudo-series from one patient's slices (the shared data has 3-8 separated slices per patient,
not whole volumes): each patient's slices in one pose form a normal series; the same series with
one slice replaced by its lesioned twin is a lesioned series. Rules are compared on validation
patients, the best is calibrated (Platt) and thresholded (95% specificity) there, and the test
patients measure it (`pancscan evaluate`). No TensorFlow: the exported model is used as shipped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from pancscan import model as runtime_model
from pancscan.errors import ScanRejected
from pancscan.predict import SERIES_RULES, check_and_run
from pancscan_model import metrics
from pancscan_model.data import load_nih_slices
from pancscan_model.samples import evaluation_cases

SERIES_SEED = 777
SPECIFICITY = 0.95
MIN_GAIN = 0.01  # AUROC a rule must gain over "max" on validation to replace it


def pseudo_series(slices, model, seed: int, style: str = "train") -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(slice logits of each series, with NaN for slices that fail the checks), labels, patients."""
    cases = evaluation_cases(slices, seed, style=style)
    logits = []
    for case in cases:
        try:
            logits.append(check_and_run(case.image, model).score_logit)
        except ScanRejected:
            logits.append(np.nan)
    # evaluation_cases: for each slice, for each pose, a normal then a lesioned case
    by_pose: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    index = 0
    for item in slices:
        for pose in range(3):
            by_pose[(item.patient, pose)].append((logits[index], logits[index + 1]))
            index += 2
    series, labels, patients = [], [], []
    for (patient, pose), pairs in by_pose.items():
        normal = np.array([n for n, _ in pairs])
        # one lesioned series per normal one (50% prevalence, as for the slice calibration); the
        # lesioned slice moves with the pose
        sick = normal.copy()
        j = pose % len(pairs)
        sick[j] = pairs[j][1]
        if not (np.isfinite(normal).any() and np.isfinite(sick).any()):
            continue  # no slice passed the checks: such an upload is rejected, not scored
        series += [normal, sick]
        labels += [0, 1]
        patients += [patient, patient]
    return series, np.array(labels), np.array(patients)


def aggregate(rule: str, series: list[np.ndarray]) -> np.ndarray:
    """The rule over the slices that passed the checks (NaN: failed)."""
    return np.array([SERIES_RULES[rule](s[np.isfinite(s)]) for s in series])


def fit_series_rule(data_dir: str | Path, model_path=None, log=print) -> dict:
    """Choose, calibrate and threshold the rule on validation patients; write it into the model's metadata."""
    model = runtime_model.load_model(model_path)
    meta_path = model.path.with_suffix(".json")
    metadata = json.loads(meta_path.read_text())
    val = set(metadata["split"]["val"])
    series, labels, _ = pseudo_series([s for s in load_nih_slices(data_dir) if s.patient in val], model, SERIES_SEED)
    aurocs = {rule: metrics.auroc(labels, aggregate(rule, series)) for rule in SERIES_RULES}
    # "max" (the most suspicious slice decides) unless another rule is clearly better on validation
    best = max(aurocs, key=lambda rule: aurocs[rule] - (0.0 if rule == "max" else MIN_GAIN))
    scores = aggregate(best, series)
    a, b = metrics.fit_platt(scores, labels)
    probs = metrics.calibrate(scores, a, b)
    threshold = metrics.threshold_at_specificity(labels, probs, SPECIFICITY)
    metadata["series"] = {
        "rule": best,
        "calibration": {"method": "platt", "a": a, "b": b},
        "threshold": threshold,
        "operating_point": f"{SPECIFICITY:.0%} specificity on validation patients' pseudo-series",
        "fitted_on": f"validation patients: {int((labels == 0).sum())} normal and {int(labels.sum())} lesioned "
                     "pseudo-series (one patient's slices in one pose; one slice lesioned); simulated lesions",
        "validation_auroc": {rule: round(value, 4) for rule, value in aurocs.items()},
    }
    meta_path.write_text(json.dumps(metadata, indent=2) + "\n")
    log(f"series rule: {best} (validation AUROC " + ", ".join(f"{r} {v:.3f}" for r, v in aurocs.items())
        + f"); threshold {threshold:.3f}; written to {meta_path}")
    return metadata["series"]
