"""The model at run time (pancscan.detection.model): its metadata read field by field, the
interpreter's threads, where the model is found; and what a refused scan says of the model."""

import os
from pathlib import Path

import numpy as np
import pytest

from pancscan.detection import model as runtime
from pancscan.detection.model import ModelMetadata, SeriesRule, SliceModel, default_model_path, interpreter_threads
from pancscan.detection.predict import predict_bytes
from tests.conftest import png_bytes

META = {"version": "9.9.9", "input": {"size": [256, 256]}, "window": {"center_hu": 127.5, "width_hu": 255.0}, "threshold": 0.58,
        "calibration": {"a": 0.5, "b": 0.1}, "ood": {"ranges": {"zero_fraction": [0.4, 0.9]}, "pancreas_min": 0.1}}


def test_metadata_without_a_series_rule_is_read_field_by_field():
    assert ModelMetadata.from_json(META) == ModelMetadata(
        version="9.9.9", input_size=256, window_center_hu=127.5, window_width_hu=255.0, threshold=0.58, platt_a=0.5, platt_b=0.1,
        ood_ranges={"zero_fraction": [0.4, 0.9]}, pancreas_min=0.1, series=None)


def test_a_series_rule_over_millimetres_is_read_with_its_null_grid_and_window():
    series = {"rule": "strongest_stretch", "grid_mm": 2.5, "window_mm": 10.0, "null": {"mean": -1.7, "sd": 1.3},
              "calibration": {"a": 0.2, "b": -1.4}, "threshold": 0.7}
    assert ModelMetadata.from_json(META | {"series": series}).series == SeriesRule(
        rule="strongest_stretch", platt_a=0.2, platt_b=-1.4, threshold=0.7, grid_mm=2.5, window_mm=10.0, null_mean=-1.7, null_sd=1.3)


def test_an_older_series_rule_scores_every_slice_and_has_no_null():
    series = {"rule": "max", "calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5}
    assert ModelMetadata.from_json(META | {"series": series}).series == SeriesRule(
        rule="max", platt_a=1.0, platt_b=0.0, threshold=0.5, grid_mm=0.0, window_mm=0.0, null_mean=None, null_sd=None)


@pytest.mark.parametrize("cpus, threads", [(None, 1), (1, 1), (3, 3), (8, 4)])
def test_without_pancscan_threads_the_interpreter_takes_the_cores_up_to_four(monkeypatch, cpus, threads):
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert interpreter_threads() == threads


@pytest.mark.parametrize("value, threads", [("1", 1), ("2", 2), ("6", 6), ("0", 1)])
def test_pancscan_threads_sets_the_interpreters_threads(monkeypatch, value, threads):
    monkeypatch.setenv(runtime.THREADS_ENV, value)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert interpreter_threads() == threads


def test_the_interpreter_is_made_with_those_threads(monkeypatch):
    import ai_edge_litert.interpreter

    made = []
    monkeypatch.setattr(ai_edge_litert.interpreter, "Interpreter", lambda **arguments: made.append(arguments))
    monkeypatch.setenv(runtime.THREADS_ENV, "3")
    runtime._interpreter(Path("/models/m.tflite"))
    assert made == [{"model_path": "/models/m.tflite", "num_threads": 3}]


def test_the_model_is_found_in_pancscan_model_else_shipped_beside_the_code(monkeypatch, tmp_path):
    monkeypatch.setenv(runtime.MODEL_ENV, str(tmp_path / "other.tflite"))
    assert default_model_path() == tmp_path / "other.tflite"
    monkeypatch.delenv(runtime.MODEL_ENV)
    assert default_model_path() == runtime.SHIPPED_MODEL and runtime.SHIPPED_MODEL.name == "pancscan.tflite"


def test_a_loaded_model_knows_its_file():
    model = SliceModel(runtime.SHIPPED_MODEL)  # not load_model: its cache may hold it already
    assert model.path == runtime.SHIPPED_MODEL and model.metadata.input_size == 256


def test_a_refused_scan_still_names_the_model_and_its_technical_facts(shipped_model):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3))
    result = predict_bytes(png_bytes(noise, "RGB"), shipped_model).as_dict()
    assert result["status"] == "rejected" and result["reason"]["code"] == "not_abdominal_ct"
    assert (result["model_version"], result["technical"]) == (shipped_model.metadata.version, {"format": "png"})


def test_calibration_is_in_double_precision_and_never_overflows():
    import warnings

    from pancscan.detection.model import platt

    logit = np.float32(0.1)
    assert platt(logit, 3.0, 0.0) == 1 / (1 + np.exp(-3.0 * float(logit)))  # not float32 arithmetic
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would warn
        assert platt(np.array([-1e6, 1e6]), 1.0, 0.0).tolist() == [1 / (1 + np.exp(60.0)), 1 / (1 + np.exp(-60.0))]


def test_the_model_takes_a_slice_in_any_float_type_and_refuses_another_size():
    model = SliceModel(runtime.SHIPPED_MODEL)
    image = np.random.default_rng(1).random((256, 256))
    as_double, as_single = model.run(image), model.run(image.astype(np.float32))
    assert as_double.score_logit == as_single.score_logit and np.array_equal(as_double.heatmap, as_single.heatmap)
    with pytest.raises(ValueError) as refused:
        model.run(np.zeros((128, 128)))
    assert str(refused.value) == "model input must be 256x256, got (128, 128)"
