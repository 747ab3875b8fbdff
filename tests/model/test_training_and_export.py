"""TensorFlow side: a tiny training run, the export pipeline, and Keras/TFLite agreement."""

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from pancscan.imaging import to_model_input  # noqa: E402
from pancscan.model import SHIPPED_MODEL, SliceModel  # noqa: E402
from pancscan_model.network import build_backbone, build_inference_model  # noqa: E402
from pancscan_model.train import TrainConfig, batches, make_train_step, train  # noqa: E402


def test_loss_decreases_on_a_few_slices(nih_slices):
    tf.keras.utils.set_random_seed(0)
    backbone = build_backbone()
    step = make_train_step(backbone, tf.keras.optimizers.Adam(2e-3))
    batch = next(batches(nih_slices[:4], pairs=2, seed=0))
    first = float(step(*batch)[0])
    for _ in range(25):
        last = float(step(*batch)[0])
    assert last < 0.7 * first


def test_train_writes_a_loadable_model_with_complete_metadata(nih_dir, tmp_path):
    config = TrainConfig(epochs=1, steps_per_epoch=3, pairs_per_batch=2, eval_variants=1)
    metadata = train(nih_dir, tmp_path, config, log=lambda line: None)
    model = SliceModel(tmp_path / "pancscan.tflite")
    assert model.metadata.input_size == 256
    assert (model.metadata.window_center_hu, model.metadata.window_width_hu) == (40.0, 400.0)
    assert 0.0 <= model.metadata.threshold <= 1.0
    assert len(metadata["training"]["data_sha256"]) == 64
    assert set(metadata["split"]) == {"train", "val", "test"}
    assert json.loads((tmp_path / "pancscan.json").read_text())["calibration"]["method"] == "platt"
    raw = model.run(np.zeros((256, 256), np.float32))
    assert raw.heatmap.shape == (64, 64)


def test_shipped_tflite_matches_keras_on_real_slices(nih_slices):
    backbone = build_backbone()
    backbone.load_weights(SHIPPED_MODEL.with_suffix(".weights.h5"))
    keras_model = build_inference_model(backbone, batch_size=1)
    lite = SliceModel(SHIPPED_MODEL)
    for item in nih_slices[::25]:
        image = to_model_input(item.image)
        expected = keras_model(image[None, ..., None], training=False)
        got = lite.run(image)
        assert abs(got.score_logit - float(expected["score_logit"][0, 0])) <= 1e-4
        assert abs(got.pancreas_max - float(expected["pancreas_max"][0, 0])) <= 1e-4
        assert np.max(np.abs(got.heatmap - np.asarray(expected["heatmap"][0]))) <= 1e-4


def test_default_training_config_is_the_shipped_models():
    from dataclasses import asdict

    shipped = json.loads(SHIPPED_MODEL.with_suffix(".json").read_text())["training"]["config"]
    assert asdict(TrainConfig()) == shipped
