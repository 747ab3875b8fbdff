"""A scan through the pipeline: read -> check -> model -> calibrated result, for one slice or a series.

Plain functions over plain types; the CLI, the inference function and the evaluation call these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pancscan.detection.model import RawOutput, SeriesRule, SliceModel, platt
from pancscan.detection.ood import check_image, check_pancreas, slice_features
from pancscan.detection.series import ASSUMED_SPACING_MM, extent_surprise, scored_extent_mm, strongest_stretch
from pancscan.errors import ScanRejected
from pancscan.outputs.slice_sheets import ScoredSlice
from pancscan.reading.scan_input import ScanInput, read_scan

LABELS = ("no_cancer_detected", "cancer_detected")
# Series rules of models before 0.2.1: slice logits (of slices that passed the checks) -> one scan logit.
# Newer models use the strongest stretch over millimetres (pancscan.detection.series).
SERIES_RULES = {
    "max": lambda logits: float(np.max(logits)),
    "top2_mean": lambda logits: float(np.mean(np.sort(logits)[-2:])),
    "mean": lambda logits: float(np.mean(logits)),
}


@dataclass(frozen=True)
class ScanResult:
    status: str  # "complete" | "rejected"
    threshold: float
    model_version: str
    label: str | None = None
    probability: float | None = None
    confidence: float | None = None
    heatmap: np.ndarray | None = None  # 64x64 lesion probability over ``image``
    image: np.ndarray | None = None  # the model input the heatmap belongs to (for a series: the most suspicious slice)
    reason: ScanRejected | None = None
    series: dict | None = None  # slices, sampled and scored, most suspicious slice, strongest stretch, per-slice probabilities, positions
    technical: dict | None = None  # allow-listed technical attributes only
    scored_slices: tuple[ScoredSlice, ...] = ()  # a series' scored slices, in order, for people to page through

    def as_dict(self) -> dict:
        """The result fields shared by the CLI's JSON and the API (heatmap and image excluded)."""
        return {
            "status": self.status,
            "label": self.label,
            "probability": None if self.probability is None else round(self.probability, 4),
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "threshold": round(self.threshold, 4),
            "model_version": self.model_version,
            "reason": None if self.reason is None else self.reason.as_dict(),
            "series": self.series,
            "technical": self.technical,
        }


def rejected(reason: ScanRejected, model: SliceModel, technical: dict | None = None) -> ScanResult:
    return ScanResult("rejected", model.metadata.threshold, model.metadata.version, reason=reason, technical=technical)


def check_and_run(image: np.ndarray, model: SliceModel, *, is_colour: bool = False) -> RawOutput:
    """The model's raw output for a slice that passes the CT checks; raises ScanRejected otherwise."""
    check_image(slice_features(image), model.metadata.ood_ranges, is_colour=is_colour)
    raw = model.run(image)
    check_pancreas(raw.pancreas_max, model.metadata.pancreas_min)
    return raw


def label_confidence(probability: float, threshold: float) -> float:
    """Confidence in the label the threshold gives: 0.5 at the threshold, rising linearly to 1.0 at a
    probability of 1 (for "cancer detected") or 0 (for "no cancer detected"). Never below 0.5, and
    consistent with the label whatever the threshold (a threshold below 0.5 would otherwise give
    "cancer detected" with a probability, read as confidence, under 50%)."""
    if probability >= threshold:
        return 0.5 + 0.5 * (probability - threshold) / max(1.0 - threshold, 1e-9)
    return 0.5 + 0.5 * (threshold - probability) / max(threshold, 1e-9)


def _labelled(probability: float, threshold: float, model: SliceModel, **fields) -> ScanResult:
    cancer = probability >= threshold
    return ScanResult("complete", threshold, model.metadata.version, label=LABELS[int(cancer)], probability=probability,
                      confidence=label_confidence(probability, threshold), **fields)


def predict_model_input(image: np.ndarray, model: SliceModel, *, is_colour: bool = False, technical: dict | None = None) -> ScanResult:
    """Score a preprocessed slice (size x size, 0..1), or reject it as not abdominal CT."""
    try:
        raw = check_and_run(image, model, is_colour=is_colour)
    except ScanRejected as reason:
        return rejected(reason, model, technical)
    return _labelled(model.probability(raw.score_logit), model.metadata.threshold, model,
                     heatmap=raw.heatmap, image=image, technical=technical)


def series_score(rule: SeriesRule, positions_mm: np.ndarray, logits: np.ndarray) -> tuple[float, np.ndarray]:
    """The scan score of the sampled slices (``logits``: NaN where a slice was not scored) under
    ``rule``, and which slices gave it."""
    scored = np.isfinite(logits)
    if rule.rule in SERIES_RULES:  # rules over the logits alone, of models before 0.2.1
        return SERIES_RULES[rule.rule](logits[scored]), scored
    stretch_logit, stretch = strongest_stretch(positions_mm, logits, rule.window_mm)
    if rule.null_mean is None:
        return stretch_logit, stretch
    extent = scored_extent_mm(positions_mm, scored)
    return extent_surprise(stretch_logit, extent, max(rule.window_mm, rule.grid_mm), rule.null_mean, rule.null_sd), stretch


def predict_series(images: list[np.ndarray], model: SliceModel, technical: dict | None = None,
                   positions_mm: Sequence[float] | None = None, sampled: Sequence[int] | None = None) -> ScanResult:
    """A series from its sampled slices (``images``, at ``sampled`` among all slices, whose positions
    along the axis are ``positions_mm``; default: every slice, ASSUMED_SPACING_MM apart). Slices that
    fail the checks (outside the abdomen, no pancreas) are left out of the scan rule and have no
    probability in the per-slice list, nor have the slices between the sampled ones."""
    sampled = list(range(len(images))) if sampled is None else list(sampled)
    positions = np.arange(len(images)) * ASSUMED_SPACING_MM if positions_mm is None else np.asarray(positions_mm, np.float64)
    raws: dict[int, RawOutput] = {}
    for index, image in zip(sampled, images):
        try:
            raws[index] = check_and_run(image, model)
        except ScanRejected:
            pass
    if not raws:
        return rejected(ScanRejected("not_abdominal_ct", "No slice of this series looks like abdominal CT showing the pancreas."),
                        model, technical)
    rule = model.metadata.series
    if rule is None:  # a model exported before series rules: its slice calibration on the top slice
        rule = SeriesRule("max", model.metadata.platt_a, model.metadata.platt_b, model.metadata.threshold)
    logits = np.array([raws[i].score_logit if i in raws else np.nan for i in sampled])
    scan_score, stretch = series_score(rule, positions[sampled], logits)
    in_stretch = [index for index, inside in zip(sampled, stretch) if inside]
    top = max(in_stretch, key=lambda i: raws[i].score_logit)  # the most suspicious slice of the stretch
    summary = {
        "slices": len(positions),
        "sampled_slices": len(sampled),
        "scored_slices": len(raws),
        "most_suspicious_slice": top,  # index in inferior-to-superior order, from 0
        "strongest_stretch": [in_stretch[0], in_stretch[-1]],
        "slice_probabilities": [round(model.probability(raws[i].score_logit), 4) if i in raws else None for i in range(len(positions))],
        "slice_threshold": round(model.metadata.threshold, 4),  # where one slice alone would be called "cancer detected"
        "positions_mm": [round(float(z - positions[0]), 2) for z in positions],
        "grid_mm": rule.grid_mm,
        "window_mm": rule.window_mm,
    }
    probability = float(platt(scan_score, rule.platt_a, rule.platt_b))
    image_of = dict(zip(sampled, images))
    scored_slices = tuple(ScoredSlice(i, image_of[i], raws[i].heatmap) for i in sorted(raws))
    return _labelled(probability, rule.threshold, model, heatmap=raws[top].heatmap, image=image_of[top],
                     series=summary, technical=technical, scored_slices=scored_slices)


def predict_scan(scan: ScanInput, model: SliceModel) -> ScanResult:
    if scan.is_series:
        return predict_series(scan.images, model, scan.technical, scan.positions_mm, scan.sampled)
    return predict_model_input(scan.images[0], model, is_colour=scan.is_colour, technical=scan.technical)


def predict_bytes(data: bytes, model: SliceModel) -> ScanResult:
    """Any supported file's bytes to a result; bad input is a rejected result, never an exception."""
    meta = model.metadata
    try:
        scan = read_scan(data, (meta.window_center_hu, meta.window_width_hu), meta.input_size,
                         meta.series.grid_mm if meta.series else 0.0)
    except ScanRejected as reason:
        return rejected(reason, model)
    return predict_scan(scan, model)
