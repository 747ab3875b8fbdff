"""What is fitted after training, on held-out cases and patients only (never on test), through the
exported models as the runtime runs them: the validation part, scored by the model itself, or with
cross-fitting every non-test case and patient, each scored by the fold model that did not see it.

- out-of-distribution limits: image statistics and the pancreas head's lowest response, from the
  training slices of both hospitals;
- slice calibration: Platt scaling with both classes weighted equally (a 50% prevalence), and the
  threshold at 95% specificity on the held-out patients' normal slices;
- the scan-level rule: the held-out cases and patients rebuilt as series at realistic spacings
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
from pancscan_model.data import CTSlice, Splits


def by_case(slices: list[CTSlice]) -> list[list[CTSlice]]:
    cases: dict[str, list[CTSlice]] = {}
    for item in slices:
        cases.setdefault(item.patient, []).append(item)
    return list(cases.values())


def calibrate_on_held_out(model_path: Path, held_out: list[tuple[Path, tuple[list[CTSlice], list[CTSlice]]]],
                          train_inputs: list[np.ndarray], metadata: dict, specificity: float, log=print) -> dict:
    """The calibration, operating point, OOD limits and series rule of the model at ``model_path``.

    ``held_out``: (an exported model, the MSD and NIH slices it never saw): the model itself and its
    validation part, or each fold model and its fold (cross-fitting)."""
    # the metadata files of the model and of the models that score the held-out slices
    jsons = {Path(model_path).with_suffix(".json"), *(path.with_suffix(".json") for path, _ in held_out)}
    # scored first with no limits and no calibration: the runtime reads them from these files
    provisional = {"calibration": {"method": "platt", "a": 1.0, "b": 0.0}, "threshold": 0.5, "ood": {"ranges": {}, "pancreas_min": 0.0}}
    for path in jsons:
        path.write_text(json.dumps(metadata | provisional))
    model = SliceModel(model_path)
    ranges = fit_ranges([slice_features(x) for x in train_inputs])
    # the lowest pancreas response on a real training slice, with room to spare
    pancreas_min = float(max(0.05, min(model.run(x).pancreas_max for x in train_inputs) * 0.5))

    held_msd = [s for _, (m, _) in held_out for s in m]
    held_nih = [s for _, (_, n) in held_out for s in n]
    logits = np.concatenate([[scorer.run(to_model_input(s.image)).score_logit for s in m + n]
                             for scorer, (m, n) in ((SliceModel(path), part) for path, part in held_out)])
    labels = np.concatenate([np.r_[np.ones(len(m)), np.zeros(len(n))] for _, (m, n) in held_out])
    a, b = metrics.fit_platt(logits, labels, weights=metrics.balanced_weights(labels))
    probs = metrics.calibrate(logits, a, b)
    threshold = metrics.threshold_at_specificity(labels, probs, specificity)
    source = held_out_source(len(held_out))
    log(f"{source} slices: AUROC {metrics.auroc(labels, probs):.3f}, threshold {threshold:.3f}, "
        f"sensitivity {np.mean(probs[labels == 1] >= threshold):.3f}")

    fitted = {
        "calibration": {"method": "platt", "a": a, "b": b, "weighting": "classes equal (50% prevalence)",
                        "fitted_on": f"{source}: {len(held_msd)} real tumour slices (MSD) and {len(held_nih)} normal slices (NIH)"},
        "threshold": threshold,
        "operating_point": f"{specificity:.0%} specificity on " + ("validation patients' normal slices" if len(held_out) == 1
                                                                  else f"every non-test patient's normal slices, {source}"),
        "ood": {"ranges": ranges, "pancreas_min": pancreas_min},
    }
    for path in jsons:
        path.write_text(json.dumps(metadata | fitted))
    # now with the limits: slices that fail them leave a series, as at run time
    fitted["series"] = fit_series_on_held_out([(SliceModel(path), part) for path, part in held_out], specificity, log)
    return fitted


def held_out_models(model_path: Path, splits: Splits) -> list[tuple[Path, Splits]]:
    """Which exported model scores which held-out part: each fold model (folds/<k>/ beside the
    model) its fold, or the model itself its validation part."""
    if not splits.folds:
        return [(model_path, splits)]
    return [(model_path.parent / "folds" / str(k) / model_path.name, fold) for k, fold in enumerate(splits.fold_splits(), 1)]


def held_out_source(models: int) -> str:
    """What the operating point was fitted on, in words."""
    return f"out-of-fold ({models} fold models)" if models > 1 else "validation"


def fit_series_on_held_out(held_out: list[tuple[SliceModel, tuple[list[CTSlice], list[CTSlice]]]], specificity: float, log=print) -> dict:
    """The scan-level rule from the held-out cases (MSD) and patients (NIH), each part scored by its
    own model, rebuilt as series at realistic spacings and lengths (pancscan_model.realistic_series)."""
    from pancscan_model.realistic_series import configurations, fit_series_rule, merged

    parts = [configurations(msd, nih, model) for model, (msd, nih) in held_out]
    return fit_series_rule(merged(parts), specificity, log, source=held_out_source(len(held_out)))


def refit_series_rule(nih_dir, msd_dir, model_path=None, log=print) -> dict:
    """`pancscan fit-series`: the rule fitted again for an exported model, written into its metadata."""
    from pancscan.detection.model import default_model_path
    from pancscan_model.data import load_msd_slices, load_nih_slices

    model = SliceModel(model_path or default_model_path())
    json_path = model.path.with_suffix(".json")
    metadata = json.loads(json_path.read_text())
    split, specificity = Splits.from_json(metadata["split"]), metadata["training"]["config"]["specificity"]
    msd, nih = load_msd_slices(msd_dir), load_nih_slices(nih_dir)
    held_out = [(SliceModel(path), part.slices("val", msd, nih)) for path, part in held_out_models(model.path, split)]
    metadata["series"] = fit_series_on_held_out(held_out, specificity, log)
    json_path.write_text(json.dumps(metadata, indent=2) + "\n")
    log(f"written to {json_path}")
    return metadata["series"]
