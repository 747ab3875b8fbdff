"""Is a fresh `pancscan evaluate` the committed one? Compared item by item and figure by figure,
within what machines really differ by, and no further.

The same model gives other last digits on another CPU (LiteRT's XNNPACK picks kernels by CPU
features and threads), so nothing that comes from model arithmetic is compared bit-exactly. Compared
exactly: which items were scored (kind, case or patient, slice) and their labels, rejections,
heatmap peaks and tumour facts; every count, version and text; every figure that moves only when a
decision flips (a score crossing the threshold or a bin edge, a heatmap peak moving), since no
committed score lies within SCORE_TOLERANCE of such a decision (`decision_margins`, checked by a test).

Measured by `bench/figure_drift.py` (the evaluation under XNNPACK with 1 and 2 threads and with
XNNPACK off, TFLite's own kernels, 1 and 2 threads; 2026-11-30, AMD EPYC, 2 cores): a probability
moved by at most 8.9e-7; AUROC of tumour vs erased by 9.0e-6 (one near-tied pair swapped, as on
the CI machine that first failed), its interval by 2.2e-7; ECE by 5.1e-8; nothing else moved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

COMMITTED = Path(__file__).resolve().parents[1] / "evaluation"

# One item's probability: 5.6x the largest difference measured (8.9e-7).
SCORE_TOLERANCE = 5e-6
# AUROC, value and interval: moves when near-tied items of the two classes swap. Every item moved at
# random within SCORE_TOLERANCE (100 draws, `test_scores_moved_as_far_as_machines_differ...`) moved it
# by at most 3.0e-5 (three tumour-vs-erased pairs lie within 2 x SCORE_TOLERANCE).
AUROC_TOLERANCE = 5e-5
# Weighted means of probabilities (ECE, a reliability bin's mean probability) cannot move further
# than the probabilities do while no item changes bin.
MEAN_PROBABILITY_TOLERANCE = SCORE_TOLERANCE
# A tumour slice against its erased twin: one committed twin pair lies 1.1e-7 apart, closer than
# machines differ, so it may go either way: one pair of 333 (0.0030), of 176 among the iso-attenuating
# tumours (0.0057); the random draws above moved the interval by 0.0035.
TWIN_TOLERANCE = 0.01

BIN_EDGES = np.arange(1, 10) / 10  # the reliability bins of metrics.reliability and ECE


def leaves(report, path: str = "") -> list[tuple[str, object]]:
    """Every leaf of a report with its path ('series/auroc/ci95[0]'), in order."""
    if isinstance(report, dict):
        return [leaf for key, value in report.items() for leaf in leaves(value, f"{path}/{key}" if path else key)]
    if isinstance(report, (list, tuple)):
        return [leaf for i, value in enumerate(report) for leaf in leaves(value, f"{path}[{i}]")]
    return [(path, report)]


def tolerance(path: str) -> float:
    """How far the figure at ``path`` may differ between machines (0: not at all)."""
    parts = set(path.replace("[", "/").split("/"))
    if "auroc" in parts:
        return AUROC_TOLERANCE
    if parts & {"ece", "mean_probability"}:
        return MEAN_PROBABILITY_TOLERANCE
    if "tumour_outscores_its_erased_twin" in parts:
        return TWIN_TOLERANCE
    return 0.0


def _kind(value) -> type:
    return bool if isinstance(value, bool) else float if isinstance(value, float) else int if isinstance(value, int) else type(value)


def figure_differences(fresh: dict, committed: dict) -> list[str]:
    """What of ``fresh`` differs from ``committed`` beyond the tolerances: figures, counts, texts."""
    a, b = leaves(fresh), leaves(committed)
    if [path for path, _ in a] != [path for path, _ in b]:
        other = sorted({path for path, _ in a} ^ {path for path, _ in b})
        return [f"other figures: {other[:5]}" if other else "the figures in another order"]
    out = []
    for (path, x), (_, y) in zip(a, b):
        if _kind(x) is not _kind(y) or (x != y and not (isinstance(y, float) and abs(x - y) <= tolerance(path))):
            out.append(f"{path}: {x!r}, committed {y!r}" + (f" (tolerance {tolerance(path):g})" if isinstance(y, float) else ""))
    return out


def item_differences(fresh: list[dict], committed: list[dict]) -> list[str]:
    """Items of ``fresh`` that are not the committed ones: other items, a probability beyond
    SCORE_TOLERANCE, any other column (label, rejection, heatmap peak, tumour facts) not the same."""
    key = lambda row: (row["kind"], row["group"], row["item"])  # noqa: E731
    if [key(r) for r in fresh] != [key(r) for r in committed]:
        gone = sorted({key(r) for r in committed} - {key(r) for r in fresh})
        new = sorted({key(r) for r in fresh} - {key(r) for r in committed})
        return [f"items missing: {gone[:5]}; items added: {new[:5]}" if gone or new else "the items in another order"]
    out = []
    for x, y in zip(fresh, committed):
        if not abs(x["probability"] - y["probability"]) <= SCORE_TOLERANCE:
            out.append(f"{'/'.join(key(y))}: probability {x['probability']!r}, committed {y['probability']!r}")
        out += [f"{'/'.join(key(y))}: {column} {x[column]!r}, committed {y[column]!r}"
                for column in y if column != "probability" and repr(x[column]) != repr(y[column])]  # repr: nan is nan
    return out


def decision_margins(rows: list[dict], threshold: float, series_threshold: float) -> dict[str, float]:
    """How close the scores come to each decision a figure counts: the threshold (the series' for
    series), a reliability bin's edge, a twin. A pair of scores can move by twice SCORE_TOLERANCE."""
    p = {kind: np.array([r["probability"] for r in rows if r["kind"] == kind])
         for kind in ("tumour", "erased", "normal", "series", "series_length", "simulated")}
    binned = np.concatenate([p["tumour"], p["erased"], p["normal"], p["series"]])
    return {"slice probability to the threshold":
            float(np.abs(np.concatenate([p["tumour"], p["erased"], p["normal"], p["simulated"]]) - threshold).min()),
            "series probability to the series threshold":
            float(np.abs(np.concatenate([p["series"], p["series_length"]]) - series_threshold).min()),
            "probability to a reliability bin edge": float(np.abs(binned[:, None] - BIN_EDGES).min()),
            "simulated lesion to its lesion-free twin": float(np.abs(p["simulated"][1::2] - p["simulated"][0::2]).min()),
            "tumour slice to its erased twin": float(np.abs(p["tumour"] - p["erased"]).min())}
