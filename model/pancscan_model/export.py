"""Export of the inference graph to a float32 .tflite (no quantisation: outputs must match Keras)."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf


def export_model(inference_model: tf.keras.Model, path: str | Path) -> Path:
    """Convert ``inference_model`` (batch size 1) and write it to ``path``."""
    converter = tf.lite.TFLiteConverter.from_keras_model(inference_model)
    path = Path(path)
    path.write_bytes(converter.convert())
    return path
