"""What is fitted after training, on validation cases and patients only (never on test), through the
exported model as the runtime runs it:

- out-of-distribution limits: image statistics and the pancreas head's lowest response, from the
  training slices of both hospitals;
- slice calibration: Platt scaling with both classes weighted equally (a 50% prevalence), and the
  threshold at 95% specificity on the validation patients' normal slices;
- the scan-level rule: each validation case's (or patient's) slices as one series.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pancscan.errors import ScanRejected
from pancscan.imaging import to_model_input
from pancscan.model import SliceModel
from pancscan.ood import fit_ranges, slice_features
from pancscan.predict import SERIES_RULES, check_and_run
from pancscan_model import metrics
from pancscan_model.data import CTSlice

MIN_GAIN = 0.01  # AUROC a series rule must gain over "max" on validation to replace it
# Rules a scan may use. Not "mean": the validation series hold tumour slices only (MSD has no tumour-free
# slices of its patients), where a mean looks best, but a whole scan has many slices beside a tumour
# seen on a few, and their mean hides it.
CANDIDATE_RULES = ("max", "top2_mean")


def series_logits(series: list[list[np.ndarray]], model: SliceModel) -> list[np.ndarray]:
    """Slice logits of each series; NaN where a slice fails the checks (left out, as the runtime does)."""
    out = []
    for images in series:
        logits = []
        for image in images:
            try:
                logits.append(check_and_run(image, model).score_logit)
            except ScanRejected:
                logits.append(np.nan)
        out.append(np.array(logits))
    return out


def aggregate(rule: str, series: list[np.ndarray]) -> np.ndarray:
    """The rule over each series' slices that passed the checks (-inf where none did)."""
    return np.array([SERIES_RULES[rule](s[np.isfinite(s)]) if np.isfinite(s).any() else -np.inf for s in series])


def by_case(slices: list[CTSlice]) -> list[list[CTSlice]]:
    cases: dict[str, list[CTSlice]] = {}
    for item in slices:
        cases.setdefault(item.patient, []).append(item)
    return list(cases.values())


def fit_series_rule(logits: list[np.ndarray], labels: np.ndarray, specificity: float, log=print) -> dict:
    aurocs = {rule: metrics.auroc(labels, aggregate(rule, logits)) for rule in CANDIDATE_RULES}
    # "max" (the most suspicious slice decides) unless another rule is clearly better on validation
    best = max(aurocs, key=lambda rule: aurocs[rule] - (0.0 if rule == "max" else MIN_GAIN))
    scores = aggregate(best, logits)
    finite = np.isfinite(scores)
    a, b = metrics.fit_platt(scores[finite], labels[finite], weights=metrics.balanced_weights(labels[finite]))
    threshold = metrics.threshold_at_specificity(labels[finite], metrics.calibrate(scores[finite], a, b), specificity)
    log(f"series rule: {best} (validation AUROC " + ", ".join(f"{r} {v:.3f}" for r, v in aurocs.items()) + f"); threshold {threshold:.3f}")
    return {
        "rule": best,
        "calibration": {"method": "platt", "a": a, "b": b},
        "threshold": threshold,
        "operating_point": f"{specificity:.0%} specificity on validation patients' series",
        "fitted_on": f"validation: {int(labels.sum())} MSD cases (real tumours; their tumour slices as a series) and "
                     f"{int((labels == 0).sum())} NIH patients (their slices as a series)",
        "validation_auroc": {rule: round(value, 4) for rule, value in aurocs.items()},
    }


def calibrate_on_validation(model_path: Path, val: tuple[list[CTSlice], list[CTSlice]], train_inputs: list[np.ndarray],
                            metadata: dict, specificity: float, log=print) -> dict:
    """The calibration, operating point, OOD limits and series rule of the model at ``model_path``."""
    json_path = Path(model_path).with_suffix(".json")
    # scored first with no limits and no calibration: the runtime reads them from this file
    provisional = {"calibration": {"method": "platt", "a": 1.0, "b": 0.0}, "threshold": 0.5, "ood": {"ranges": {}, "pancreas_min": 0.0}}
    json_path.write_text(json.dumps(metadata | provisional))
    model = SliceModel(model_path)
    ranges = fit_ranges([slice_features(x) for x in train_inputs])
    # the lowest pancreas response on a real training slice, with room to spare
    pancreas_min = float(max(0.05, min(model.run(x).pancreas_max for x in train_inputs) * 0.5))

    val_msd, val_nih = val
    logits = np.array([model.run(to_model_input(s.image)).score_logit for s in val_msd + val_nih])
    labels = np.r_[np.ones(len(val_msd)), np.zeros(len(val_nih))]
    a, b = metrics.fit_platt(logits, labels, weights=metrics.balanced_weights(labels))
    probs = metrics.calibrate(logits, a, b)
    threshold = metrics.threshold_at_specificity(labels, probs, specificity)
    log(f"validation slices: AUROC {metrics.auroc(labels, probs):.3f}, threshold {threshold:.3f}, "
        f"sensitivity {np.mean(probs[labels == 1] >= threshold):.3f}")

    fitted = {
        "calibration": {"method": "platt", "a": a, "b": b, "weighting": "classes equal (50% prevalence)",
                        "fitted_on": f"validation: {len(val_msd)} real tumour slices (MSD) and {len(val_nih)} normal slices (NIH)"},
        "threshold": threshold,
        "operating_point": f"{specificity:.0%} specificity on validation patients' normal slices",
        "ood": {"ranges": ranges, "pancreas_min": pancreas_min},
    }
    json_path.write_text(json.dumps(metadata | fitted))
    # now with the limits: slices that fail them leave a series, as at run time
    fitted["series"] = fit_series_on_validation(SliceModel(model_path), val_msd, val_nih, specificity, log)
    return fitted


def fit_series_on_validation(model: SliceModel, val_msd: list[CTSlice], val_nih: list[CTSlice], specificity: float, log=print) -> dict:
    """The scan-level rule from each validation case's (MSD) or patient's (NIH) slices as one series."""
    cases = by_case(val_msd) + by_case(val_nih)
    series = [[to_model_input(s.image) for s in case] for case in cases]
    labels = np.array([1] * len(by_case(val_msd)) + [0] * len(by_case(val_nih)))
    return fit_series_rule(series_logits(series, model), labels, specificity, log)


def refit_series_rule(nih_dir, msd_dir, model_path=None, log=print) -> dict:
    """`pancscan fit-series`: the rule fitted again for an exported model, written into its metadata."""
    from pancscan.model import default_model_path
    from pancscan_model.data import load_msd_slices, load_nih_slices

    model = SliceModel(model_path or default_model_path())
    json_path = model.path.with_suffix(".json")
    metadata = json.loads(json_path.read_text())
    split, specificity = metadata["split"], metadata["training"]["config"]["specificity"]
    val_msd = [s for s in load_msd_slices(msd_dir) if s.patient in set(split["msd"]["val"])]
    val_nih = [s for s in load_nih_slices(nih_dir) if s.patient in set(split["nih"]["val"])]
    metadata["series"] = fit_series_on_validation(model, val_msd, val_nih, specificity, log)
    json_path.write_text(json.dumps(metadata, indent=2) + "\n")
    log(f"written to {json_path}")
    return metadata["series"]
