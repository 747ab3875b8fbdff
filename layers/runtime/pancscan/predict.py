"""One slice through the pipeline: decode -> check -> preprocess -> model -> calibrated result.

Plain functions over plain types; the CLI and (later) the inference function call these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pancscan.errors import ScanRejected
from pancscan.imaging import DecodedImage, decode_image, to_model_input
from pancscan.model import SliceModel
from pancscan.ood import check_image, check_pancreas, slice_features

LABELS = ("no_cancer_detected", "cancer_detected")


@dataclass(frozen=True)
class SliceResult:
    status: str  # "complete" | "rejected"
    threshold: float
    model_version: str
    label: str | None = None
    probability: float | None = None
    confidence: float | None = None
    heatmap: np.ndarray | None = None  # 64x64 lesion probability over the input image
    reason: ScanRejected | None = None

    def as_dict(self) -> dict:
        """The result fields shared by the CLI's JSON and the API (heatmap excluded)."""
        return {
            "status": self.status,
            "label": self.label,
            "probability": None if self.probability is None else round(self.probability, 4),
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "threshold": round(self.threshold, 4),
            "model_version": self.model_version,
            "reason": None if self.reason is None else self.reason.as_dict(),
        }


def rejected(reason: ScanRejected, model: SliceModel) -> SliceResult:
    return SliceResult("rejected", model.metadata.threshold, model.metadata.version, reason=reason)


def predict_model_input(image: np.ndarray, model: SliceModel, *, is_colour: bool = False) -> SliceResult:
    """Score a preprocessed slice (size x size, 0..1), or reject it as not abdominal CT."""
    meta = model.metadata
    try:
        check_image(slice_features(image), meta.ood_ranges, is_colour=is_colour)
        raw = model.run(image)
        check_pancreas(raw.pancreas_max, meta.pancreas_min)
    except ScanRejected as reason:
        return rejected(reason, model)
    probability = model.probability(raw.score_logit)
    cancer = probability >= meta.threshold
    return SliceResult(
        "complete",
        meta.threshold,
        meta.version,
        label=LABELS[int(cancer)],
        probability=probability,
        confidence=probability if cancer else 1.0 - probability,
        heatmap=raw.heatmap,
    )


def predict_decoded(decoded: DecodedImage, model: SliceModel) -> SliceResult:
    return predict_model_input(to_model_input(decoded.grey, model.metadata.input_size), model, is_colour=decoded.is_colour)


def predict_bytes(data: bytes, model: SliceModel) -> SliceResult:
    """A PNG or JPEG file's bytes to a result; bad input is a rejected result, never an exception."""
    try:
        decoded = decode_image(data)
    except ScanRejected as reason:
        return rejected(reason, model)
    return predict_decoded(decoded, model)
