"""`pancscan evaluate`: score the exported model through the runtime, as users get it.

With the MSD tumour slices (``msd_dir``), on the model's TEST cases and patients (from its metadata):

- real tumour slices (MSD) against normal slices (NIH): AUROC, sensitivity and specificity at the
  model's threshold, sensitivity by tumour area, calibration error (both classes weighted equally);
- each tumour slice against the same slice with its tumour erased (``fill.erase_tumour``, a fill
  never used in training): a detector of the hospital scores both alike;
- localisation: how often the heatmap's maximum lies on the tumour (its mask grown by 5 mm), among
  detected tumour slices, and how often it still lands there once the tumour is erased;
- scan level: each test case's slices as a DICOM series (HU rebuilt from the slices), against each
  normal test patient's series, through the series rule; and the rule at realistic spacings and
  lengths (10-300 slices), the series rebuilt as pancscan_model.realistic_series says;
- out of distribution: real slices wrongly rejected, and made-up non-CT images rejected;
- examples.png: detected and missed test tumours and the highest-scoring normal slices, with heatmaps;
- simulated lesions in the normal test patients (reported apart: they are not real tumours);
- scores.csv: every scored image (or series) with its case or patient, label and probability, so a
  figure can be traced to its items and a fresh run compared with the committed one item by item.

95% intervals resample whole cases and patients (1000 bootstraps). Without ``msd_dir``: class
folders (``normal/``, ``cancer/``) or MSD Task07 NIfTI, with the labels they carry.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from pancscan.detection import model as runtime_model
from pancscan.detection.model import platt
from pancscan.detection.predict import predict_bytes, predict_model_input
from pancscan.reading.imaging import to_model_input
from pancscan_model import metrics, places, realistic_series
from pancscan_model.calibration import by_case, held_out_models
from pancscan_model.data import Splits, load_class_folders, load_msd_slices, load_msd_task07, load_nih_slices
from pancscan_model.dicom_series import hu_from_slice, series_zip
from pancscan_model.fill import erase_tumour, jpeg_roundtrip, tumour_contrast_hu
from pancscan_model.ood_sets import ood_images
from pancscan_model.samples import Case, evaluation_cases

EVAL_SEED = 4242
AREA_BANDS_PX = {"<200 px": (0, 200), "200-800 px": (200, 800), ">=800 px": (800, np.inf)}
ISO_ATTENUATING_HU = 20  # tumours within this of their surroundings (median HU) are hard to see on one slice
LOCALISATION_MARGIN_MM = 5.0
MARGIN_PX = int(round(LOCALISATION_MARGIN_MM / places.PIXEL_MM))
RESEARCH = " Research use only, not a medical device."
NOTE = ("Positives are REAL pancreatic tumours (MSD Task07, one hospital); negatives are normal pancreases "
        "(NIH Pancreas-CT, another hospital)." + RESEARCH)
HELD_OUT_NOTE = ("HELD-OUT cases and patients, not the test ones: for choosing between models. The calibration and "
                 "threshold were fitted on these slices, so sensitivity, specificity and ECE here are in-sample; AUROC, "
                 "the erased twins and the localisation are not. " + NOTE)


@dataclass(frozen=True)
class Scored:
    labels: np.ndarray
    probs: np.ndarray
    groups: np.ndarray  # case or patient of each item: the unit the bootstrap resamples
    areas: np.ndarray  # tumour area in pixels (0 for normal slices)
    rejected: np.ndarray


# scores.csv: one row per scored image or series. The tumour's columns are filled for tumour slices
# and their erased twins: its pixels, its median HU, its contrast with the tissue around it, and
# whether the heatmap's maximum lies on it. ``place``: the tumour's (head, body, tail) for those, and
# for normal slices where the heatmap's maximum lies (in the pancreas's head, body or tail, or outside it).
SCORE_COLUMNS = ("kind", "group", "item", "label", "probability", "rejected",
                 "tumour_px", "tumour_hu", "contrast_hu", "peak_on_tumour", "place")
_NUMBERS = {"label": int, "probability": float, "rejected": int, "tumour_px": int, "tumour_hu": float,
            "contrast_hu": float, "peak_on_tumour": int}
_TEXTS = {"place"}


def score_rows(kind: str, groups, items, labels, probs, rejected, **tumour_columns) -> list[dict]:
    """Rows of scores.csv, one per item; ``tumour_columns``: a list of values for each tumour column."""
    rows = [{"kind": kind, "group": str(g), "item": str(i), "label": int(y), "probability": float(p), "rejected": int(bool(r))}
            for g, i, y, p, r in zip(groups, items, labels, probs, rejected)]
    for column in SCORE_COLUMNS[6:]:
        values = tumour_columns.get(column, [""] * len(rows))
        for row, value in zip(rows, values):
            row[column] = value if value == "" or column in _TEXTS else _NUMBERS[column](value)
    return rows


def write_scores(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=SCORE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: repr(value) if isinstance(value, float) else value for key, value in row.items()} for row in rows)


def read_scores(path: Path) -> list[dict]:
    with path.open(newline="") as source:
        return [{key: _NUMBERS[key](value) if key in _NUMBERS and value != "" else value for key, value in row.items()}
                for row in csv.DictReader(source)]


def _interval(statistic, groups: np.ndarray) -> dict:
    return {"value": statistic(np.arange(len(groups))), "ci95": metrics.patient_bootstrap(statistic, groups)}


def summarise(s: Scored, threshold: float) -> dict:
    """AUROC, sensitivity, specificity, ECE (classes weighted equally), each with its 95% interval,
    and sensitivity by tumour area."""
    def sens(i):
        y, p = s.labels[i], s.probs[i]
        return float(np.mean(p[y == 1] >= threshold)) if (y == 1).any() else float("nan")

    def spec(i):
        y, p = s.labels[i], s.probs[i]
        return float(np.mean(p[y == 0] < threshold)) if (y == 0).any() else float("nan")

    def ece(i):
        return metrics.expected_calibration_error(s.labels[i], s.probs[i], weights=metrics.balanced_weights(s.labels[i]))

    out = {"cases": int(len(s.labels)), "positives": int(s.labels.sum()), "groups": int(np.unique(s.groups).size),
           "auroc": _interval(lambda i: metrics.auroc(s.labels[i], s.probs[i]), s.groups),
           "sensitivity": _interval(sens, s.groups), "specificity": _interval(spec, s.groups), "ece": _interval(ece, s.groups),
           "rejected_fraction": float(s.rejected.mean())}
    if s.areas.any():
        out["sensitivity_by_area"] = {}
        for band, (lo, hi) in AREA_BANDS_PX.items():
            subset = np.flatnonzero((s.labels == 0) | ((s.areas >= lo) & (s.areas < hi)))
            out["sensitivity_by_area"][band] = {"n": int((s.labels[subset] == 1).sum())} | _interval(
                lambda i: sens(subset[i]), s.groups[subset])
    out["reliability"] = metrics.reliability(s.labels, s.probs, weights=metrics.balanced_weights(s.labels))
    return out


def outscores_twin(p_tumour: np.ndarray, p_erased: np.ndarray, cases: np.ndarray, subset: np.ndarray | None = None) -> dict:
    """How often a tumour slice (of ``subset``) scores above the same slice with its tumour erased."""
    subset = np.ones(len(cases), bool) if subset is None else subset
    return _interval(lambda i: float(np.mean(p_tumour[i][subset[i]] > p_erased[i][subset[i]])), cases)


def real_sets(rows: list[dict]) -> dict[str, Scored]:
    """The two comparisons of real tumour slices, from their rows of scores.csv: against normal
    slices, and against the same slices with the tumour erased."""
    def scored(*kinds: str) -> Scored:
        chosen = [r for r in rows if r["kind"] in kinds]
        return Scored(np.array([r["label"] for r in chosen]), np.array([r["probability"] for r in chosen]),
                      np.array([r["group"] for r in chosen]), np.array([r["tumour_px"] if r["label"] else 0 for r in chosen]),
                      np.array([bool(r["rejected"]) for r in chosen]))

    return {"real_tumour_vs_normal": scored("tumour", "normal"), "real_tumour_vs_erased": scored("tumour", "erased")}


def real_figures(rows: list[dict], threshold: float) -> dict:
    """The report's figures on real tumours, a function of scores.csv alone (so the committed report
    can be recomputed from the committed scores): both comparisons, by tumour contrast, localisation."""
    report = {name: summarise(s, threshold) for name, s in real_sets(rows).items()}
    tumour, erased = ([r for r in rows if r["kind"] == kind] for kind in ("tumour", "erased"))
    p_tumour, p_erased = np.array([r["probability"] for r in tumour]), np.array([r["probability"] for r in erased])
    cases, areas = np.array([r["group"] for r in tumour]), np.array([r["tumour_px"] for r in tumour])
    report["real_tumour_vs_erased"]["tumour_outscores_its_erased_twin"] = outscores_twin(p_tumour, p_erased, cases)

    visible = np.abs([r["contrast_hu"] for r in tumour]) >= ISO_ATTENUATING_HU  # NaN (no tissue around it) counts as not visible
    report["by_tumour_contrast"] = {
        "definition": f"median HU of the tumour minus that of the soft tissue around it; 'visible': at least {ISO_ATTENUATING_HU} HU apart",
        "visible_fraction": float(visible.mean()),
        "median_tumour_hu_by_area": {band: float(np.median([r["tumour_hu"] for r, a in zip(tumour, areas) if lo <= a < hi]))
                                     for band, (lo, hi) in AREA_BANDS_PX.items()},
        **{name: {"n": int(subset.sum()),
                  "sensitivity": _interval(lambda i, subset=subset: float(np.mean(p_tumour[i][subset[i]] >= threshold)), cases),
                  "tumour_outscores_its_erased_twin": outscores_twin(p_tumour, p_erased, cases, subset)}
           for name, subset in (("visible", visible), ("iso_attenuating", ~visible))},
    }

    on_tumour, still_there = (np.array([r["peak_on_tumour"] == 1 for r in part]) for part in (tumour, erased))
    detected = p_tumour >= threshold
    report["localisation"] = {
        "definition": f"heatmap maximum within the tumour mask grown by {LOCALISATION_MARGIN_MM:g} mm ({MARGIN_PX} px at {places.PIXEL_MM} mm)",
        "detected_tumour_slices": {"n": int(detected.sum())} | _interval(
            lambda i: float(on_tumour[i][detected[i]].mean()) if detected[i].any() else float("nan"), cases),
        "all_tumour_slices": {"n": len(tumour)} | _interval(lambda i: float(on_tumour[i].mean()), cases),
        "after_erasing": {"n": len(tumour)} | _interval(lambda i: float(still_there[i].mean()), cases),
    }
    report["errors_by_kind"] = errors_by_kind(rows, threshold)
    return report


def _rate(hits: np.ndarray) -> float:
    return float(hits.mean()) if hits.size else float("nan")


def errors_by_kind(rows: list[dict], threshold: float) -> dict:
    """Sensitivity by the tumour's place (``n``: its tumour slices); false alarms by where the heatmap's
    maximum lies: on normal slices (NIH) in the pancreas's head, body or tail or outside it ("unknown"
    for a slice without a pancreas mask), on erased twins (MSD) at the erased tumour or elsewhere
    (``called`` of ``of`` slices; the parts of one kind add up to 1 - its specificity)."""
    tumour, erased, normal = ([r for r in rows if r["kind"] == kind] for kind in ("tumour", "erased", "normal"))
    found = np.array([r["probability"] >= threshold for r in tumour])
    cases, place = np.array([r["group"] for r in tumour]), np.array([r["place"] for r in tumour])
    flagged = np.array([r["probability"] >= threshold for r in normal])
    patients, peak = np.array([r["group"] for r in normal]), np.array([r["place"] for r in normal])
    twin_flagged = np.array([r["probability"] >= threshold for r in erased])
    at_tumour = np.array([r["peak_on_tumour"] == 1 for r in erased])

    def share(hits: np.ndarray, groups: np.ndarray) -> dict:
        return {"called": int(hits.sum()), "of": int(hits.size)} | _interval(lambda i: _rate(hits[i]), groups)

    return {
        "definition": places.__doc__.split("\n\n")[0].replace("\n", " "),
        "sensitivity_by_place": {name: {"n": int((place == name).sum())} | _interval(
            lambda i, at=(place == name): _rate(found[i][at[i]]), cases) for name in places.PLACES},
        "false_alarms_on_normal_slices": {name: share(flagged & (peak == name), patients) for name in
                                          (*places.PLACES, places.OUTSIDE, *([places.UNKNOWN] if places.UNKNOWN in peak else []))},
        "false_alarms_on_erased_twins": {"at the erased tumour": share(twin_flagged & at_tumour, cases),
                                         "elsewhere": share(twin_flagged & ~at_tumour, cases)},
    }


def peak_on_tumour(heatmap: np.ndarray, tumour: np.ndarray, margin_px: int) -> bool:
    """Is the centre of the heatmap's hottest cell on the tumour grown by ``margin_px``?"""
    y, x = places.peak_pixel(heatmap, tumour.shape)
    return bool(ndimage.binary_dilation(tumour, iterations=margin_px)[y, x])


def _run(image: np.ndarray, model):
    result = predict_model_input(to_model_input(image), model)
    # metrics use the model's probability also for the (rare) rejected real slices
    raw = model.run(to_model_input(image))
    return (result.probability if result.probability is not None else model.probability(raw.score_logit)), raw.heatmap, result.status == "rejected"


def real_rows(model, msd: list, nih: list) -> tuple[list[dict], list, list]:
    """Rows of scores.csv for tumour slices, their erased twins and normal slices scored by ``model``;
    and the tumour and normal slices' (probability, heatmap, rejected), for the gallery."""
    # every tumour slice once more through JPEG, as its erased twin is: the two differ only by the tumour
    tumour = [_run(jpeg_roundtrip(s.image), model) for s in msd]
    erased = [_run(erase_tumour(s.image, s.tumour, seed=EVAL_SEED + k), model) for k, s in enumerate(msd)]
    normal = [_run(s.image, model) for s in nih]
    facts = {"tumour_px": [int(s.tumour.sum()) for s in msd], "tumour_hu": [float(np.median(s.image[s.tumour])) for s in msd],
             "contrast_hu": [float(tumour_contrast_hu(s.image, s.tumour)) for s in msd],
             "place": [places.place_of_mask(s.image, s.tumour) for s in msd]}

    def tumour_rows(kind: str, label: int, scored: list) -> list[dict]:
        peaks = [peak_on_tumour(heatmap, s.tumour, MARGIN_PX) for (_, heatmap, _), s in zip(scored, msd)]
        return score_rows(kind, [s.patient for s in msd], [s.name for s in msd], [label] * len(msd),
                          [p for p, _, _ in scored], [r for _, _, r in scored], **facts, peak_on_tumour=peaks)

    rows = tumour_rows("tumour", 1, tumour) + tumour_rows("erased", 0, erased)
    rows += score_rows("normal", [s.patient for s in nih], [s.name for s in nih], [0] * len(nih),
                       [p for p, _, _ in normal], [r for _, _, r in normal],
                       place=[places.place_of_peak(s.image, heatmap, s.pancreas, MARGIN_PX) for (_, heatmap, _), s in zip(normal, nih)])
    return rows, tumour, normal


def evaluate_real(nih_dir: Path, msd_dir: Path, model, metadata: dict, log, out_dir: Path) -> tuple[dict, dict[str, Scored], list[dict]]:
    split = metadata["split"]
    msd = [s for s in load_msd_slices(msd_dir) if s.patient in set(split["msd"]["test"])]
    nih = [s for s in load_nih_slices(nih_dir) if s.patient in set(split["nih"]["test"])]
    if not msd or not nih:
        raise SystemExit("none of the model's test cases or patients are in these data folders")
    log(f"test: {len(split['msd']['test'])} MSD cases ({len(msd)} tumour slices), {len(split['nih']['test'])} NIH patients ({len(nih)} slices)")
    threshold = model.metadata.threshold
    rows, tumour, normal = real_rows(model, msd, nih)
    sets = real_sets(rows)
    report = real_figures(rows, threshold)

    if model.metadata.series is not None:
        series_cases = by_case(msd) + by_case(nih)
        # (status, probability) only: a result also holds its scored slices' images
        results = [(r.status, r.probability) for r in (predict_bytes(series_zip([hu_from_slice(s.image) for s in case]), model)
                                                       for case in series_cases)]
        probs = np.array([probability if probability is not None else 0.0 for _, probability in results])
        labels = np.array([1] * len(by_case(msd)) + [0] * len(by_case(nih)))
        groups = np.array([case[0].patient for case in series_cases])
        sets["series"] = Scored(labels, probs, groups, np.zeros(len(labels)), np.array([status == "rejected" for status, _ in results]))
        rows += score_rows("series", groups, [f"{len(case)} slices" for case in series_cases], labels, probs, sets["series"].rejected)
        report["series"] = summarise(sets["series"], model.metadata.series.threshold) | {
            "rule": model.metadata.series.rule, "threshold": model.metadata.series.threshold,
            "note": "each test case's tumour slices (MSD) or test patient's slices (NIH) as one DICOM series, HU rebuilt from the slices"}
        report["series_lengths"], length_rows = _series_lengths(msd, nih, model)
        rows += length_rows

    _gallery(msd, tumour, nih, normal, threshold, MARGIN_PX, out_dir)
    report["out_of_distribution"] = _out_of_distribution([s.image for s in msd + nih], model)
    report["simulated_lesions_nih_test"], simulated_rows = _simulated(nih, model, threshold)
    return report, sets, rows + simulated_rows


def evaluate_held_out(nih_dir: Path, msd_dir: Path, model, metadata: dict, log, fold: int = 0) -> tuple[dict, dict[str, Scored], list[dict]]:
    """The figures on real tumours for the model's held-out cases and patients, not its test ones:
    the validation part scored by the model itself, or (cross-fitted) every non-test case and patient
    scored by the fold model that did not see it (``fold``: fold k's alone). For choosing between
    models without the test cases."""
    splits = Splits.from_json(metadata["split"])
    scorers = held_out_models(model.path, splits)
    if fold and not (splits.folds and 1 <= fold <= len(scorers)):
        raise SystemExit(f"fold {fold}: this model has {len(scorers) if splits.folds else 'no'} fold models")
    msd, nih = load_msd_slices(msd_dir), load_nih_slices(nih_dir)
    rows = []
    for path, part in scorers[fold - 1:fold] if fold else scorers:
        held_msd, held_nih = part.slices("val", msd, nih)
        log(f"{path}: {len(part.msd['val'])} MSD cases ({len(held_msd)} tumour slices), {len(part.nih['val'])} NIH patients ({len(held_nih)} slices)")
        rows += real_rows(runtime_model.SliceModel(path), held_msd, held_nih)[0]
    report = real_figures(rows, model.metadata.threshold)
    if splits.folds and not fold:
        report["threshold_by_fold"] = threshold_by_fold(rows, splits, metadata["training"]["config"]["specificity"])
    return report, real_sets(rows), rows


def threshold_by_fold(rows: list[dict], splits: Splits, specificity: float) -> list[dict]:
    """How well a threshold chosen on a few patients holds: for each fold, the threshold at
    ``specificity`` on its own normal slices alone, and what it gives on the other folds' slices
    (scored by their own fold models: the spread mixes the few patients with the models' differences,
    as a threshold carried from fold models to the shipped model does)."""
    out = []
    for held_msd, held_nih in zip(splits.folds["msd"], splits.folds["nih"]):
        own = np.array([r["probability"] for r in rows if r["kind"] == "normal" and r["group"] in held_nih])
        threshold = metrics.threshold_at_specificity(np.zeros(own.size), own, specificity)
        normal = np.array([r["probability"] for r in rows if r["kind"] == "normal" and r["group"] not in held_nih])
        tumour = np.array([r["probability"] for r in rows if r["kind"] == "tumour" and r["group"] not in held_msd])
        out.append({"patients": len(held_nih), "normal_slices": int(own.size), "threshold": threshold,
                    "other_folds_specificity": _rate(normal < threshold), "other_folds_sensitivity": _rate(tumour >= threshold)})
    return out


def _series_lengths(msd, nih, model) -> tuple[dict, list[dict]]:
    """The series rule at realistic spacings and lengths (pancscan_model.realistic_series): each test
    case and patient rebuilt at 0.8-5 mm, and among the other test patients to 10-300 slices."""
    configs = realistic_series.configurations(msd, nih, model)
    rule, out, rows = model.metadata.series, {"note": realistic_series.__doc__.split("\n\n")[1].replace("\n", " ")}, []
    for name in configs.by_name:
        labels, scores, groups = realistic_series.scores(configs, name, rule)
        probs = np.asarray(platt(scores, rule.platt_a, rule.platt_b))
        y = labels == 1
        out[name] = {"cases": int(len(labels)), "positives": int(y.sum()),
                     "median_slices": int(np.median([len(s.index) for s in configs.by_name[name]])),
                     "auroc": _interval(lambda i: metrics.auroc(labels[i], probs[i]), groups),
                     "sensitivity": _interval(lambda i: float(np.mean(probs[i][y[i]] >= rule.threshold)), groups),
                     "specificity": _interval(lambda i: float(np.mean(probs[i][~y[i]] < rule.threshold)), groups)}
        rows += score_rows("series_length", groups, [name] * len(labels), labels, probs, np.zeros(len(labels)))
    return out, rows


def _gallery(msd, tumour, nih, normal, threshold: float, margin_px: int, out_dir: Path, per_row: int = 6) -> None:
    """examples.png, for people to look at what the model looks at: test tumour slices it detects
    (first row) and misses (second row), one per case, tumour outlined in green; the normal test
    slices it scores highest (third row). Heatmap in red where above 0.1, as on the page."""
    from PIL import Image

    from pancscan_client.overlay import overlay

    def tile(item, heatmap, outline: bool) -> np.ndarray:
        image = np.asarray(overlay(to_model_input(item.image) * 255, heatmap, opacity=0.7), np.float32)
        if outline:
            mask = to_model_input(item.tumour * 255.0) > 0.5
            image[mask & ~ndimage.binary_erosion(mask)] = [0, 255, 0]
        return image

    def one_per_case(found) -> list[int]:
        first = {}
        for i, (p, _, _) in enumerate(tumour):
            if found(p):
                first.setdefault(msd[i].patient, i)
        return list(first.values())[:per_row]

    detected, missed = one_per_case(lambda p: p >= threshold), one_per_case(lambda p: p < threshold)
    highest = np.argsort([-p for p, _, _ in normal])[:per_row]
    rows = [[tile(msd[i], tumour[i][1], True) for i in detected], [tile(msd[i], tumour[i][1], True) for i in missed],
            [tile(nih[i], normal[i][1], False) for i in highest]]
    blank = np.zeros((256, 256, 3), np.float32)
    grid = np.concatenate([np.concatenate(row + [blank] * (per_row - len(row)), axis=1) for row in rows], axis=0)
    Image.fromarray(grid.astype(np.uint8)).save(out_dir / "examples.png")


def _out_of_distribution(real: list[np.ndarray], model) -> dict:
    inputs = [to_model_input(image) for image in real]
    wrongly = [predict_model_input(x, model).status == "rejected" for x in inputs + [np.ascontiguousarray(x[::-1]) for x in inputs]]
    rejected = {}
    for category, files in ood_images(EVAL_SEED, per_category=30).items():
        results = [predict_bytes(data, model) for data in files]
        rejected[category] = float(np.mean([r.status == "rejected" and r.reason.code == "not_abdominal_ct" for r in results]))
    return {"real_slices_wrongly_rejected": float(np.mean(wrongly)), "real_slices": len(wrongly),
            "rejected_by_category": rejected, "rejected_overall": float(np.mean(list(rejected.values()))), "per_category": 30}


def _simulated(nih, model, threshold: float) -> tuple[dict, list[dict]]:
    """Simulated lesions (the held-out generator) in the normal test patients: reported apart."""
    cases = evaluation_cases(nih, EVAL_SEED, style="heldout", variants=1)
    probs = np.array([predict_model_input(c.image, model).probability or 0.0 for c in cases])
    labels = np.array([c.label for c in cases])
    groups = np.array([c.patient for c in cases])
    higher = probs[1::2] > probs[0::2]  # cases come in pairs: a slice without, then with a lesion
    rows = score_rows("simulated", groups, [k // 2 for k in range(len(cases))], labels, probs, np.zeros(len(cases)))
    return {"note": "SIMULATED lesions (held-out generator) in the NIH test patients' slices, each against its lesion-free twin",
            "auroc": _interval(lambda i: metrics.auroc(labels[i], probs[i]), groups),
            "sensitivity": _interval(lambda i: float(np.mean(probs[i][labels[i] == 1] >= threshold)), groups),
            "lesioned_twin_scores_higher": _interval(lambda i: float(higher[i].mean()), groups[::2])}, rows


def evaluate_labelled(slices, model) -> tuple[dict, dict[str, Scored], list[dict]]:
    cases = [Case(to_model_input(s.image), int(s.label), s.patient) for s in slices]
    results = [predict_model_input(c.image, model) for c in cases]
    probs = np.array([r.probability if r.probability is not None else model.probability(model.run(c.image).score_logit)
                      for r, c in zip(results, cases)])
    scored = Scored(np.array([c.label for c in cases]), probs, np.array([c.patient for c in cases]), np.zeros(len(cases)),
                    np.array([r.status == "rejected" for r in results]))
    rows = score_rows("labelled", scored.groups, [s.name for s in slices], scored.labels, probs, scored.rejected)
    return {"labelled": summarise(scored, model.metadata.threshold)}, {"labelled": scored}, rows


def evaluate(data_dir, msd_dir=None, model_path=None, out_dir="evaluation", log=print, held_out: bool = False, fold: int = 0) -> dict:
    if (held_out or fold) and (msd_dir is None or not held_out):
        raise SystemExit("pancscan evaluate: --held-out needs --msd, and --fold needs --held-out")
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    model = runtime_model.load_model(model_path)
    metadata = json.loads(model.path.with_suffix(".json").read_text())
    if msd_dir is not None and held_out:
        (report, scored, rows), note = evaluate_held_out(data_dir, Path(msd_dir), model, metadata, log, fold), HELD_OUT_NOTE
    elif msd_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        report, scored, rows = evaluate_real(data_dir, Path(msd_dir), model, metadata, log, out_dir)
        note = NOTE
    elif (data_dir / "imagesTr").is_dir():
        (report, scored, rows), note = evaluate_labelled(load_msd_task07(data_dir), model), "Labels as the data set gives them." + RESEARCH
    else:
        (report, scored, rows), note = evaluate_labelled(load_class_folders(data_dir), model), "Labels as the folders give them." + RESEARCH
    report = {"model_version": model.metadata.version, "threshold": model.metadata.threshold,
              "note": note, **report}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    write_scores(rows, out_dir / "scores.csv")
    _plots(scored, out_dir)
    for line in table(report):
        log(line)
    log(f"report: {out_dir / 'report.json'}, scores: {out_dir / 'scores.csv'}; plots: {out_dir / 'roc.png'}, {out_dir / 'calibration.png'}"
        + (f", {out_dir / 'examples.png'}" if msd_dir is not None and not held_out else ""))
    return report


def _fmt(metric: dict) -> str:
    lo, hi = metric["ci95"]
    return f"{metric['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def table(report: dict) -> list[str]:
    lines = [report["note"], f"model {report['model_version']}, threshold {report['threshold']:.3f}", ""]
    lines.append(f"{'set':28s} {'n':>5s} {'AUROC [95% CI]':>22s} {'sensitivity':>22s} {'specificity':>22s} {'ECE':>22s}")
    for name, r in report.items():
        if isinstance(r, dict) and "specificity" in r:
            lines.append(f"{name:28s} {r['cases']:5d} {_fmt(r['auroc']):>22s} {_fmt(r['sensitivity']):>22s} "
                         f"{_fmt(r['specificity']):>22s} {_fmt(r['ece']):>22s}")
            for band, b in r.get("sensitivity_by_area", {}).items():
                lines.append(f"    sensitivity, tumour {band:10s} (n={b['n']:3d}) {_fmt(b)}")
            if "tumour_outscores_its_erased_twin" in r:
                lines.append(f"    tumour slice outscores its erased twin {_fmt(r['tumour_outscores_its_erased_twin'])}")
    if "by_tumour_contrast" in report:
        contrast = report["by_tumour_contrast"]
        for name in ("visible", "iso_attenuating"):
            part = contrast[name]
            lines.append(f"{name.replace('_', '-') + ' tumours':24s} (n={part['n']:3d}) sensitivity {_fmt(part['sensitivity'])}, "
                         f"outscores its erased twin {_fmt(part['tumour_outscores_its_erased_twin'])}")
    if "localisation" in report:
        loc = report["localisation"]
        lines.append(f"localisation ({loc['definition']}):")
        for key in ("detected_tumour_slices", "all_tumour_slices", "after_erasing"):
            lines.append(f"    {key.replace('_', ' '):24s} (n={loc[key]['n']:3d}) {_fmt(loc[key])}")
    if "errors_by_kind" in report:
        kinds = report["errors_by_kind"]
        lines.append("sensitivity by place: " + ", ".join(f"{k} (n={v['n']}) {_fmt(v)}" for k, v in kinds["sensitivity_by_place"].items()))
        for name in ("false_alarms_on_normal_slices", "false_alarms_on_erased_twins"):
            lines.append(f"{name.replace('_', ' ')}, peak: " + ", ".join(f"{k} ({v['called']} of {v['of']}) {_fmt(v)}"
                                                                        for k, v in kinds[name].items()))
    for k, fold in enumerate(report.get("threshold_by_fold", []), 1):
        lines.append(f"threshold from fold {k} alone ({fold['patients']} patients, {fold['normal_slices']} normal slices) "
                     f"{fold['threshold']:.3f}: on the other folds specificity {fold['other_folds_specificity']:.3f}, "
                     f"sensitivity {fold['other_folds_sensitivity']:.3f}")
    if "series_lengths" in report:
        lines.append(f"series at realistic spacing and length (series threshold {report['series']['threshold']:.3f}):")
        for name, r in report["series_lengths"].items():
            if name != "note":
                lines.append(f"    {name:36s} (median {r['median_slices']:3d} slices) AUROC {_fmt(r['auroc'])}, "
                             f"sensitivity {_fmt(r['sensitivity'])}, specificity {_fmt(r['specificity'])}")
    if "out_of_distribution" in report:
        o = report["out_of_distribution"]
        lines.append(f"out-of-distribution: real slices wrongly rejected {o['real_slices_wrongly_rejected']:.1%} "
                     f"of {o['real_slices']}; non-CT rejected {o['rejected_overall']:.1%}")
        lines.extend(f"    {k:20s} {v:.0%} of {o['per_category']}" for k, v in o["rejected_by_category"].items())
    if "simulated_lesions_nih_test" in report:
        sim = report["simulated_lesions_nih_test"]
        lines.append(f"simulated lesions (not real tumours): AUROC {_fmt(sim['auroc'])}, sensitivity {_fmt(sim['sensitivity'])}")
    return lines


def _plots(scored: dict[str, Scored], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, s in scored.items():
        fpr, tpr = metrics.roc_curve(s.labels, s.probs)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {metrics.auroc(s.labels, s.probs):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC, test cases")
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "roc.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, s in scored.items():
        bins = metrics.reliability(s.labels, s.probs, weights=metrics.balanced_weights(s.labels))
        ax.plot([b["mean_probability"] for b in bins], [b["observed_rate"] for b in bins], "o-", label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="predicted probability", ylabel="observed fraction with tumour", title="Calibration (classes weighted equally)")
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(out_dir / "calibration.png", dpi=120)
    plt.close(fig)
