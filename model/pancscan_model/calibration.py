"""What is fitted after training, on validation cases and patients only (never on test), through the
exported model as the runtime runs it:

- out-of-distribution limits: image statistics and the pancreas head's lowest response, from the
  training slices of both hospitals;
- slice calibration: Platt scaling with both classes weighted equally (a 50% prevalence), and the
  threshold at 95% specificity on the validation patients' normal slices;
- the scan-level rule: the validation cases and patients rebuilt as series at realistic spacings
  and lengths (pancscan_model.realistic_series).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pancscan.detection.model import SliceModel
from pancscan.detection.ood import fit_ranges, slice_features
from pancscan.reading.imaging import to_model_input
from pancscan_model import metrics
from pancscan_model.data import CTSlice


def by_case(slices: list[CTSlice]) -> list[list[CTSlice]]:
    cases: dict[str, list[CTSlice]] = {}
    for item in slices:
        cases.setdefault(item.patient, []).append(item)
    return list(cases.values())


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
    """The scan-level rule from the validation cases (MSD) and patients (NIH) rebuilt as series at
    realistic spacings and lengths (pancscan_model.realistic_series)."""
    from pancscan_model.realistic_series import configurations, fit_series_rule

    return fit_series_rule(configurations(val_msd, val_nih, model), specificity, log)


def refit_series_rule(nih_dir, msd_dir, model_path=None, log=print) -> dict:
    """`pancscan fit-series`: the rule fitted again for an exported model, written into its metadata."""
    from pancscan.detection.model import default_model_path
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
