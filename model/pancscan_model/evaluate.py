"""`pancscan evaluate`: score the exported model (through the runtime, as users get it).

On the NIH slices: held-out test patients (from the model's metadata), each slice in 3 mild poses,
each pose once normal and once with a simulated lesion, from the training lesion generator and
from a held-out generator; also the same cases upside down, real slices for false rejections, and
made-up non-CT images for the out-of-distribution check. On class folders or MSD Task07: the
labels the data set gives. Confidence intervals resample whole patients (1000 bootstraps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pancscan import model as runtime_model
from pancscan.model import platt
from pancscan.imaging import to_model_input
from pancscan.predict import predict_bytes, predict_model_input
from pancscan_model import metrics
from pancscan_model.data import load_class_folders, load_msd_task07, load_nih_slices
from pancscan_model.ood_sets import ood_images
from pancscan_model.samples import Case, evaluation_cases
from pancscan_model.series_rule import aggregate, pseudo_series

EVAL_SEED = 4242
SIZE_BANDS_MM = {"5-10 mm": (0, 10), "10-20 mm": (10, 20), ">=20 mm": (20, 1e9)}
NOTE = ("Positives are SIMULATED lesions inserted into real CT of normal pancreases; no real tumour was "
        "seen in training or in this evaluation. Research use only, not a medical device.")


@dataclass(frozen=True)
class Scored:
    labels: np.ndarray
    probs: np.ndarray
    patients: np.ndarray
    diameters: np.ndarray
    rejected: np.ndarray


def score(cases: list[Case], model) -> Scored:
    probs, rejected = [], []
    for case in cases:
        result = predict_model_input(case.image, model)
        rejected.append(result.status == "rejected")
        # Metrics use the model's probability also for the (rare) rejected real slices.
        probs.append(result.probability if result.probability is not None else model.probability(model.run(case.image).score_logit))
    return Scored(
        np.array([c.label for c in cases]), np.array(probs), np.array([c.patient for c in cases]),
        np.array([c.diameter_mm for c in cases]), np.array(rejected),
    )


def summarise(s: Scored, threshold: float) -> dict:
    """AUROC, sensitivity, specificity, ECE (with patient-bootstrap 95% CIs) and sensitivity by size."""
    def at(idx, fn):
        return fn(s.labels[idx], s.probs[idx])

    def sens(y, p):
        return float(np.mean(p[y == 1] >= threshold)) if (y == 1).any() else float("nan")

    def spec(y, p):
        return float(np.mean(p[y == 0] < threshold)) if (y == 0).any() else float("nan")

    everything = np.arange(len(s.labels))
    stats = {"auroc": metrics.auroc, "sensitivity": sens, "specificity": spec, "ece": metrics.expected_calibration_error}
    out = {"cases": int(len(s.labels)), "positives": int(s.labels.sum()), "patients": int(np.unique(s.patients).size)}
    for name, fn in stats.items():
        out[name] = {"value": at(everything, fn), "ci95": metrics.patient_bootstrap(lambda i, fn=fn: at(i, fn), s.patients)}
    if s.diameters.any():
        out["sensitivity_by_size"] = {}
        for band, (lo, hi) in SIZE_BANDS_MM.items():
            in_band = (s.labels == 0) | ((s.diameters >= lo) & (s.diameters < hi))
            subset = np.flatnonzero(in_band)
            out["sensitivity_by_size"][band] = {
                "n": int(((s.labels == 1) & in_band).sum()),
                "value": at(subset, sens),
                "ci95": metrics.patient_bootstrap(lambda i: at(subset[i], sens), s.patients[subset]),
            }
        # Where AUROC is low although lesions do raise the score: how often a lesioned slice
        # outscores its own lesion-free twin (same patient, same pose). Cases come in such pairs.
        twins = s.probs[1::2] > s.probs[0::2]
        out["lesioned_twin_scores_higher"] = {
            "value": float(twins.mean()),
            "ci95": metrics.patient_bootstrap(lambda i: float(twins[i].mean()), s.patients[1::2]),
        }
    out["reliability"] = metrics.reliability(s.labels, s.probs)
    out["rejected_fraction"] = float(s.rejected.mean())
    return out


def _flipped(cases: list[Case]) -> list[Case]:
    return [Case(np.ascontiguousarray(c.image[::-1]), c.label, c.patient, c.diameter_mm) for c in cases]


def evaluate_simulated(data_dir: Path, model, metadata: dict, log) -> tuple[dict, dict[str, Scored]]:
    test_patients = set(metadata["split"]["test"])
    slices = [s for s in load_nih_slices(data_dir) if s.patient in test_patients]
    if not slices:
        raise SystemExit("none of the model's test patients are in this data folder")
    log(f"test patients: {len(test_patients)}, slices: {len(slices)}")
    train_style = evaluation_cases(slices, EVAL_SEED, style="train")
    sets = {
        "simulated_lesions_training_generator": train_style,
        "simulated_lesions_heldout_generator": evaluation_cases(slices, EVAL_SEED, style="heldout"),
        "upside_down_training_generator": _flipped(train_style),
    }
    scored = {name: score(cases, model) for name, cases in sets.items()}
    report = {name: summarise(s, model.metadata.threshold) for name, s in scored.items()}

    if model.metadata.series is not None:
        rule = model.metadata.series
        series, labels, patients = pseudo_series(slices, model, EVAL_SEED)
        probs = platt(aggregate(rule.rule, series), rule.platt_a, rule.platt_b)
        scored["pseudo_series_scan_level"] = Scored(labels, probs, patients, np.zeros(len(labels)), np.zeros(len(labels), bool))
        report["pseudo_series_scan_level"] = summarise(scored["pseudo_series_scan_level"], rule.threshold) | {
            "rule": rule.rule, "threshold": rule.threshold,
            "note": "one test patient's slices in one pose form a series; lesioned series have one slice lesioned"}

    real = [to_model_input(s.image) for s in slices]
    rejected_real = [predict_model_input(x, model).status == "rejected" for x in real + [x[::-1].copy() for x in real]]
    ood = {}
    for category, files in ood_images(EVAL_SEED, per_category=30).items():
        results = [predict_bytes(data, model) for data in files]
        ood[category] = float(np.mean([r.status == "rejected" and r.reason.code == "not_abdominal_ct" for r in results]))
    report["out_of_distribution"] = {
        "real_slices_wrongly_rejected": float(np.mean(rejected_real)),
        "real_slices": len(rejected_real),
        "rejected_by_category": ood,
        "rejected_overall": float(np.mean(list(ood.values()))),
        "per_category": 30,
    }
    return report, scored


def evaluate_labelled(slices, model) -> tuple[dict, dict[str, Scored]]:
    cases = [Case(to_model_input(s.image), int(s.label), s.patient) for s in slices]
    scored = {"labelled": score(cases, model)}
    return {"labelled": summarise(scored["labelled"], model.metadata.threshold)}, scored


def evaluate(data_dir, model_path=None, out_dir="evaluation", log=print) -> dict:
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    model = runtime_model.load_model(model_path)
    metadata = json.loads(model.path.with_suffix(".json").read_text())
    if (data_dir / "images").is_dir() and (data_dir / "masks").is_dir():
        report, scored = evaluate_simulated(data_dir, model, metadata, log)
    elif (data_dir / "imagesTr").is_dir():
        report, scored = evaluate_labelled(load_msd_task07(data_dir), model)
    else:
        report, scored = evaluate_labelled(load_class_folders(data_dir), model)
    report = {"model_version": model.metadata.version, "threshold": model.metadata.threshold, "note": NOTE, **report}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    _plots(scored, out_dir)
    for line in table(report):
        log(line)
    log(f"report: {out_dir / 'report.json'}; plots: {out_dir / 'roc.png'}, {out_dir / 'calibration.png'}")
    return report


def _fmt(metric: dict) -> str:
    lo, hi = metric["ci95"]
    return f"{metric['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def table(report: dict) -> list[str]:
    lines = [NOTE, f"model {report['model_version']}, threshold {report['threshold']:.3f}", ""]
    lines.append(f"{'set':40s} {'cases':>6s} {'AUROC [95% CI]':>22s} {'sensitivity':>22s} {'specificity':>22s} {'ECE':>22s}")
    for name, r in report.items():
        if isinstance(r, dict) and "auroc" in r:
            lines.append(f"{name:40s} {r['cases']:6d} {_fmt(r['auroc']):>22s} {_fmt(r['sensitivity']):>22s} "
                         f"{_fmt(r['specificity']):>22s} {_fmt(r['ece']):>22s}")
            for band, b in r.get("sensitivity_by_size", {}).items():
                lines.append(f"    sensitivity {band:10s} (n={b['n']:3d}) {_fmt(b)}")
            if "lesioned_twin_scores_higher" in r:
                lines.append(f"    lesioned slice outscores its lesion-free twin {_fmt(r['lesioned_twin_scores_higher'])}")
    if "out_of_distribution" in report:
        o = report["out_of_distribution"]
        lines.append("")
        lines.append(f"out-of-distribution: real slices wrongly rejected {o['real_slices_wrongly_rejected']:.1%} "
                     f"of {o['real_slices']}; non-CT rejected {o['rejected_overall']:.1%}")
        lines.extend(f"    {k:20s} {v:.0%} of {o['per_category']}" for k, v in o["rejected_by_category"].items())
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
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC (simulated lesions)" if len(scored) > 1 else "ROC")
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "roc.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, s in scored.items():
        bins = metrics.reliability(s.labels, s.probs)
        ax.plot([b["mean_probability"] for b in bins], [b["observed_rate"] for b in bins], "o-", label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="predicted probability", ylabel="observed fraction with lesion", title="Calibration")
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(out_dir / "calibration.png", dpi=120)
    plt.close(fig)
