"""The exported model at run time: a .tflite and its metadata JSON, loaded once per process.

Runs on ai-edge-litert's interpreter alone: the runtime never imports TensorFlow (an import
contract in pyproject.toml holds it to that).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_ENV = "PANCSCAN_MODEL"
THREADS_ENV = "PANCSCAN_THREADS"
# The shipped artefact sits in model/ at the top of the repository.
SHIPPED_MODEL = Path(__file__).resolve().parents[4] / "model" / "pancscan.tflite"


@dataclass(frozen=True)
class SeriesRule:
    """How slice scores make a scan-level probability: slices sampled every ``grid_mm`` (0: every
    slice), a named rule over their logits (``strongest_stretch``: the best mean over ``window_mm``),
    then its own Platt calibration and threshold (fitted on validation patients' series)."""

    rule: str
    platt_a: float
    platt_b: float
    threshold: float
    grid_mm: float = 0.0
    window_mm: float = 0.0
    null_mean: float | None = None  # normal stretches' distribution: the strongest stretch judged against the extent
    null_sd: float | None = None


@dataclass(frozen=True)
class ModelMetadata:
    version: str
    input_size: int
    window_center_hu: float
    window_width_hu: float
    threshold: float
    platt_a: float
    platt_b: float
    ood_ranges: dict[str, list[float]]
    pancreas_min: float
    series: SeriesRule | None = None

    @classmethod
    def from_json(cls, data: dict) -> "ModelMetadata":
        return cls(
            version=data["version"],
            input_size=int(data["input"]["size"][0]),
            window_center_hu=float(data["window"]["center_hu"]),
            window_width_hu=float(data["window"]["width_hu"]),
            threshold=float(data["threshold"]),
            platt_a=float(data["calibration"]["a"]),
            platt_b=float(data["calibration"]["b"]),
            ood_ranges={k: [float(v[0]), float(v[1])] for k, v in data["ood"]["ranges"].items()},
            pancreas_min=float(data["ood"]["pancreas_min"]),
            series=SeriesRule(
                rule=data["series"]["rule"],
                platt_a=float(data["series"]["calibration"]["a"]),
                platt_b=float(data["series"]["calibration"]["b"]),
                threshold=float(data["series"]["threshold"]),
                grid_mm=float(data["series"].get("grid_mm", 0.0)),
                window_mm=float(data["series"].get("window_mm", 0.0)),
                null_mean=data["series"]["null"]["mean"] if "null" in data["series"] else None,
                null_sd=data["series"]["null"]["sd"] if "null" in data["series"] else None,
            ) if "series" in data else None,
        )


@dataclass(frozen=True)
class RawOutput:
    """What the graph computes for one slice, before calibration."""

    score_logit: float
    heatmap: np.ndarray  # (64, 64) lesion probability per cell
    pancreas_max: float


def platt(logits, a: float, b: float):
    """Platt scaling: sigmoid(a * logit + b), for a number or an array."""
    z = np.clip(a * np.asarray(logits, np.float64) + b, -60, 60)
    return 1.0 / (1.0 + np.exp(-z))


def interpreter_threads() -> int:
    """$PANCSCAN_THREADS, default this machine's cores (at most 4). The functions set it from their
    memory: Lambda gives one vCPU per 1769 MB, and more threads than vCPUs only contend."""
    return max(1, int(os.environ.get(THREADS_ENV, str(min(os.cpu_count() or 1, 4)))))


def _interpreter(model_path: Path):
    from ai_edge_litert.interpreter import Interpreter  # LiteRT only: the runtime never loads TensorFlow

    return Interpreter(model_path=str(model_path), num_threads=interpreter_threads())


class SliceModel:
    """A loaded model: ``run`` maps one model input (size x size, 0..1) to its raw outputs."""

    def __init__(self, model_path: str | Path):
        model_path = Path(model_path)
        self.path = model_path
        self.metadata = ModelMetadata.from_json(json.loads(model_path.with_suffix(".json").read_text()))
        self._runner = _interpreter(model_path).get_signature_runner()

    def run(self, image: np.ndarray) -> RawOutput:
        size = self.metadata.input_size
        if image.shape != (size, size):
            raise ValueError(f"model input must be {size}x{size}, got {image.shape}")
        out = self._runner(image=np.asarray(image, np.float32).reshape(1, size, size, 1))
        return RawOutput(
            score_logit=float(out["score_logit"].ravel()[0]),
            heatmap=np.asarray(out["heatmap"][0], np.float32),
            pancreas_max=float(out["pancreas_max"].ravel()[0]),
        )

    def probability(self, score_logit: float) -> float:
        """Calibrated probability (Platt scaling fitted on validation patients)."""
        return float(platt(score_logit, self.metadata.platt_a, self.metadata.platt_b))


def default_model_path() -> Path:
    return Path(os.environ.get(MODEL_ENV, SHIPPED_MODEL))


@lru_cache(maxsize=4)
def load_model(path: str | Path | None = None) -> SliceModel:
    """The model at ``path`` (default: $PANCSCAN_MODEL, else the shipped one), loaded once per process."""
    return SliceModel(Path(path) if path else default_model_path())
