"""Series at the length and spacing of real CT, rebuilt from the shared slices, and the scan rule
judged and fitted on them.

The shared data hold a few slices of each patient, not whole series: NIH patients 2-15 slices named
by their index in the original series (taken as 1 mm apart), MSD cases their adjacent tumour slices
(taken as 2.5 mm apart, Task07's usual spacing). A series at spacing s has a
slice every s mm over the case's extent, each the nearest real slice (the gaps filled as the slice
indices say). A longer series places the case among other normal patients' series rebuilt the
same way, alternately above and below, to the length asked; the padding is either those slices as
they are (every slice shows a pancreas: the hardest case) or with their pancreas erased (a stand-in
for the slices above and below the pancreas that a real series mostly holds).

Every distinct slice is scored once through the runtime; a rebuilt series is a list of indices into
those scores, and the rule is applied with the runtime's own functions (pancscan.detection.series).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pancscan.detection.model import SeriesRule, SliceModel
from pancscan.detection.predict import check_and_run, series_score
from pancscan.detection.series import sample_on_grid, window_means
from pancscan.errors import ScanRejected
from pancscan.reading.imaging import to_model_input
from pancscan_model import metrics
from pancscan_model.data import CTSlice
from pancscan_model.fill import erase_tumour

NIH_INDEX_MM = 1.0  # NIH Pancreas-CT slice indices: about 1 mm apart (assumed; thickness 1.5-2.5 mm)
MSD_SPACING_MM = 2.5  # MSD Task07: most volumes 2.5 mm apart (not recorded per slice here)
SPACINGS_MM = (0.8, 1.5, 3.0, 5.0)
LENGTHS = (10, 30, 100, 300)
LENGTH_SPACING_MM = 1.5
GRID_MM = 2.5  # slices scored every 2.5 mm: a common reading thickness, and a third of a 0.8 mm series' cost
CANDIDATE_WINDOWS_MM = (0.0, 10.0, 20.0)
NEAR_TIE = 0.01  # worst-case AUROC within which the narrower window is kept (a wider one dilutes small tumours,
                 # which the validation series, made of tumour slices only, cannot show)


@dataclass(frozen=True)
class Rebuilt:
    """A rebuilt series: ``index`` into a pool, one entry per slice, ``positions_mm`` along the axis."""

    group: str
    label: int
    index: np.ndarray
    positions_mm: np.ndarray


def logits_of(slices: list[CTSlice], model: SliceModel, erase_pancreas: bool = False) -> np.ndarray:
    """Each slice's logit through the runtime (NaN: failed its checks, left out of a series as there)."""
    out = []
    for k, item in enumerate(slices):
        image = erase_tumour(item.image, item.pancreas, seed=k) if erase_pancreas else item.image
        try:
            out.append(check_and_run(to_model_input(image), model).score_logit)
        except ScanRejected:
            out.append(np.nan)
    return np.array(out)


def slice_position_mm(item: CTSlice) -> float:
    index = float(item.name.rsplit("-", 1)[1])
    return index * (MSD_SPACING_MM if item.name.startswith("MSD_") else NIH_INDEX_MM)


def at_spacing(case: list[int], slices: list[CTSlice], spacing_mm: float) -> list[int]:
    """The case (indices into ``slices``) as a series ``spacing_mm`` apart over its extent, each
    position filled by the nearest real slice, inferior to superior."""
    z = np.array([slice_position_mm(slices[i]) for i in case])
    order = np.argsort(z)
    z, case = z[order], np.asarray(case)[order]
    points = np.arange(z[0], z[-1] + 1e-6, spacing_mm)
    return case[np.abs(points[:, None] - z[None, :]).argmin(axis=1)].tolist()


def among(own: list[int], padding: list[list[int]], length: int) -> list[int]:
    """``own`` in the middle of ``length`` slices, the padding series added alternately above and
    below it; an ``own`` longer than ``length`` keeps its middle."""
    if len(own) >= length:
        start = (len(own) - length) // 2
        return own[start:start + length]
    below, above, k = [], [], 0
    while len(below) + len(own) + len(above) < length and padding:
        part = padding[k % len(padding)]
        if k % 2:
            below = part + below
        else:
            above = above + part
        k += 1
    extra = max(0, len(below) + len(own) + len(above) - length)  # trimmed from both ends, ``own`` in the middle
    cut_above = min(len(above), extra - min(len(below), extra // 2))
    cut_below = extra - cut_above
    return below[cut_below:] + own + above[:len(above) - cut_above]


def series_set(cases: dict[str, list[int]], labels: dict[str, int], normals: dict[str, list[int]],
               slices: list[CTSlice], spacing_mm: float, length: int | None, padding_offset: int = 0) -> list[Rebuilt]:
    """Each case at ``spacing_mm``; with ``length``, among the other normal patients (their indices
    shifted by ``padding_offset``: a pool with the padding's own slices after the cases')."""
    out = []
    for group, case in cases.items():
        own = at_spacing(case, slices, spacing_mm)
        if length is not None:
            others = [[i + padding_offset for i in at_spacing(normal, slices, spacing_mm)] for name, normal in normals.items() if name != group]
            own = among(own, others, length)
        out.append(Rebuilt(group, labels[group], np.array(own), np.arange(len(own)) * spacing_mm))
    return out


def scan_score(series: Rebuilt, logits: np.ndarray, rule: SeriesRule) -> float:
    """The runtime's rule on a rebuilt series: sampled on its grid, then ``series_score``."""
    sampled = sample_on_grid(series.positions_mm, rule.grid_mm)
    return series_score(rule, series.positions_mm[sampled], logits[series.index[sampled]])[0]


def groups_of(slices: list[CTSlice]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for k, item in enumerate(slices):
        groups.setdefault(item.patient, []).append(k)
    return groups


@dataclass(frozen=True)
class Configurations:
    """Every way a part's cases are rebuilt: the spacings, and the lengths among each padding."""

    by_name: dict[str, list[Rebuilt]]
    logits: dict[str, np.ndarray]  # per configuration: the pool's logits it indexes


def configurations(msd: list[CTSlice], nih: list[CTSlice], model: SliceModel) -> Configurations:
    """The part's MSD cases and NIH patients at each spacing, and at each length among the other NIH
    patients (as they are, and with their pancreas erased)."""
    slices = msd + nih
    plain = logits_of(slices, model)
    cases = groups_of(slices)
    labels = {group: int(slices[case[0]].name.startswith("MSD_")) for group, case in cases.items()}
    normals = {group: case for group, case in cases.items() if not labels[group]}
    by_name, logits = {}, {}
    for spacing in SPACINGS_MM:
        by_name[f"{spacing:g} mm"], logits[f"{spacing:g} mm"] = series_set(cases, labels, normals, slices, spacing, None), plain
    # the erased slices follow the part's own in one array: NIH slice j at len(slices) + j
    paddings = {"normal slices": (plain, 0), "pancreas erased": (np.r_[plain, logits_of(nih, model, erase_pancreas=True)], len(nih))}
    for padding, (values, offset) in paddings.items():
        for length in LENGTHS:
            name = f"{length} slices among {padding}"
            by_name[name] = series_set(cases, labels, normals, slices, LENGTH_SPACING_MM, length, offset)
            logits[name] = values
    return Configurations(by_name, logits)


def merged(parts: list[Configurations]) -> Configurations:
    """Several parts' configurations as one, each part scored by its own model (cross-fitting): the
    pools joined, each series' indices shifted to its part's place in them."""
    by_name, logits = {}, {}
    for name in parts[0].by_name:
        offsets = np.cumsum([0] + [len(part.logits[name]) for part in parts[:-1]])
        by_name[name] = [replace(s, index=s.index + offset) for part, offset in zip(parts, offsets) for s in part.by_name[name]]
        logits[name] = np.concatenate([part.logits[name] for part in parts])
    return Configurations(by_name, logits)


def scores(configs: Configurations, name: str, rule: SeriesRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, scan scores, groups) of one configuration's series under ``rule``."""
    series = configs.by_name[name]
    return (np.array([s.label for s in series]), np.array([scan_score(s, configs.logits[name], rule) for s in series]),
            np.array([s.group for s in series]))


def null_stretches(configs: Configurations, grid_mm: float, window_mm: float) -> tuple[float, float]:
    """Mean and SD of every stretch's mean logit in the normal patients' own series (1.5 mm)."""
    values = []
    for series in configs.by_name[f"{LENGTH_SPACING_MM:g} mm"]:
        if series.label == 0:
            sampled = sample_on_grid(series.positions_mm, grid_mm)
            logits = configs.logits[f"{LENGTH_SPACING_MM:g} mm"][series.index[sampled]]
            values.append(window_means(series.positions_mm[sampled][np.isfinite(logits)], logits[np.isfinite(logits)], window_mm))
    values = np.concatenate(values)
    return float(values.mean()), float(values.std())


def fit_series_rule(configs: Configurations, specificity: float, log=print, source: str = "validation") -> dict:
    """The series rule fitted on held-out configurations (``source``: which, in words): the stretch whose worst AUROC over
    every spacing and length is best (the narrower within NEAR_TIE), each judged against its extent;
    Platt scaling and the threshold at ``specificity`` on all configurations together."""
    candidates = {}
    for window in CANDIDATE_WINDOWS_MM:
        rule = SeriesRule("strongest_stretch", 1.0, 0.0, 0.5, GRID_MM, window, *null_stretches(configs, GRID_MM, window))
        worst = min(metrics.auroc(*scores(configs, name, rule)[:2]) for name in configs.by_name)
        candidates[window] = (worst, rule)
        log(f"series rule: stretch of {window:g} mm on a {GRID_MM:g} mm grid, worst {source} AUROC {worst:.3f}")
    best = max(candidates.values(), key=lambda c: c[0])[0]
    window, (worst, rule) = min((w, c) for w, c in candidates.items() if c[0] >= best - NEAR_TIE)
    per_config = [scores(configs, name, rule) for name in configs.by_name]
    labels, values = np.concatenate([c[0] for c in per_config]), np.concatenate([c[1] for c in per_config])
    a, b = metrics.fit_platt(values, labels, weights=metrics.balanced_weights(labels))
    threshold = metrics.threshold_at_specificity(labels, metrics.calibrate(values, a, b), specificity)
    log(f"series rule: {window:g} mm stretch; threshold {threshold:.3f}")
    return {
        "rule": "strongest_stretch",
        "grid_mm": GRID_MM,
        "window_mm": window,
        "null": {"mean": rule.null_mean, "sd": rule.null_sd,
                 "fitted_on": f"every stretch of the {source} NIH patients' own series at 1.5 mm"},
        "calibration": {"method": "platt", "a": a, "b": b},
        "threshold": threshold,
        "operating_point": f"{specificity:.0%} specificity on {source} patients' series at every spacing and length",
        "fitted_on": f"{source}: {sum(c.label for c in configs.by_name[f'{LENGTH_SPACING_MM:g} mm'])} MSD cases and "
                     f"{sum(1 - c.label for c in configs.by_name[f'{LENGTH_SPACING_MM:g} mm'])} NIH patients rebuilt at "
                     + ", ".join(configs.by_name),
        "validation_worst_auroc": {f"{w:g} mm": round(c[0], 4) for w, c in candidates.items()},
    }
