"""Export of the inference graph to a .tflite, float32 by default.

int8 weights (dynamic-range quantisation, ``quantise=True``) were measured on model 0.2.0 and not
shipped: validation AUROC 0.8196 against 0.8198, test AUROC 0.776 against 0.777, 4.8x faster on two
threads; but its outputs depend on the kernels that run it (up to 0.01 in probability between
LiteRT's XNNPACK and TFLite's own kernels, two test slices across the threshold), where float32
differs by under 1e-6: figures that another machine reproduces matter more (bench/figure_drift.py).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf


def export_model(inference_model: tf.keras.Model, path: str | Path, quantise: bool = False) -> Path:
    """Convert ``inference_model`` (batch size 1) and write it to ``path``; with ``quantise``, int8
    weights and float activations."""
    converter = tf.lite.TFLiteConverter.from_keras_model(inference_model)
    if quantise:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # with no representative data: weights only
    path = Path(path)
    path.write_bytes(converter.convert())
    return path
