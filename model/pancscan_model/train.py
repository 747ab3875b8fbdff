"""Training on real tumours: dense tumour maps from the MSD masks, pancreas maps from the NIH masks.

Then, on held-out cases and patients (the validation part; or, cross-fitted, every non-test case
and patient scored by the fold model that did not see it): Platt calibration, the threshold at 95%
specificity on normal slices, the out-of-distribution limits and the scan-level rule; then export of
the .tflite and its metadata. The test cases are not touched here.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from pancscan.reading.imaging import MODEL_SIZE, WINDOW_CENTER_HU, WINDOW_WIDTH_HU, to_model_input
from pancscan_model.calibration import calibrate_on_held_out, held_out_models
from pancscan_model.crops import MAP_STRIDE, BatchMix, batches, prepare
from pancscan_model.data import Splits, data_hash, load_msd_slices, load_nih_slices, make_splits
from pancscan_model.export import export_model
from pancscan_model.network import build_backbone, build_inference_model

HARD_CELLS = 8  # map cells per crop that count as its false alarms
TUMOUR_MARGIN_CELLS = 2  # cells around a tumour that are not false alarms (its edge, its surroundings)
# 0.2.1: the weights of 0.2.0 with the series rule over millimetres
# 0.3.0: cross-fitted (the operating point from every non-test patient), bfloat16 steps (detector v3)
MODEL_VERSION = "0.3.0"


@dataclass(frozen=True)
class LossWeights:
    tumour_pos_weight: float = 2.0  # tumour cells against tumour-free ones in the map's cross-entropy
    rank_twin: float = 1.0  # a tumour crop's maximum above its filled-in twin's
    twin_cells: float = 0.5  # the same, cell by cell over the tumour
    hard_negatives: float = 0.5  # the hottest tumour-free cells of every crop pushed down (the map's false alarms)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 4500
    crop: int = 128  # crops of the 256x256 model input; the network is fully convolutional
    mix: BatchMix = field(default_factory=BatchMix)
    weights: LossWeights = field(default_factory=LossWeights)
    transplants: int = 800
    # after this fraction of the steps, the model's false alarms on its own training slices (both
    # hospitals) are mined, and from then on mix.false_alarms crops of each batch are centred on them
    mine_false_alarms_at: float = 0.0
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 20261129
    msd_val: float = 0.15  # fractions of the MSD cases
    msd_test: float = 0.2
    nih_val: int = 9  # NIH patients
    nih_test: int = 10
    specificity: float = 0.95
    # K > 1: cross-fitting. K fold models, each trained without a K-th of the non-test cases and patients,
    # score those; the calibration, threshold and series rule rest on all of them (not on one validation
    # part), and the shipped model is trained on every non-test case and patient.
    folds: int = 3
    fold: int = 0  # with folds: fold k's model alone, calibrated on its held-out part (to compare settings on one fold)
    width: float = 1.0  # the network's channels (pancscan_model.network.build_backbone)
    # "mixed_bfloat16": steps about 1.6x faster on CPUs with AVX512-BF16 (measured here); weights stay float32.
    # Elsewhere bfloat16 is emulated and slow: train with precision "float32" (other last digits, same recipe).
    precision: str = "mixed_bfloat16"

    def __post_init__(self):
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"folds {self.folds}: 0 (one validation part) or 2 or more")
        if self.fold and not 1 <= self.fold <= self.folds:
            raise ValueError(f"fold {self.fold} of {self.folds} folds: choose 1 to {self.folds} with folds of 2 or more")
        if min(asdict(self.mix).values()) < 0:
            raise ValueError(f"a batch cannot hold fewer than no crops of a kind: {self.mix}")
        mine_at = int(self.mine_false_alarms_at * self.steps)
        if bool(self.mix.false_alarms) != bool(mine_at) or not 0 <= self.mine_false_alarms_at < 1:
            raise ValueError("false-alarm crops need false alarms mined after a fraction of the steps between 0 and 1 "
                             f"(at least one step), and mined false alarms need crops: {self.mix.false_alarms} crops, "
                             f"mined at {self.mine_false_alarms_at} of {self.steps} steps")


def losses(tumour, pancreas, pancreas_weight, twin_of, pancreas_logits, lesion_logits, weights: LossWeights) -> dict[str, tf.Tensor]:
    """Dense maps, and rankings that say what the map's maximum must come from.

    - pancreas: cross-entropy where the organ is known (NIH everywhere, MSD on its tumour);
    - tumour map: weighted cross-entropy at every cell (tumour-free tissue of both hospitals is
      negative), plus Dice on crops that hold a tumour (a strong gradient for small ones);
    - slice: the map's maximum against "this crop holds a tumour";
    - within the slice: the maximum on the tumour above the maximum anywhere else (away from its edge);
    - twins: a tumour crop's maximum above its filled-in twin's (and, cell by cell, its tumour
      above the same cells of the twin).
    """
    score = tf.reduce_max(lesion_logits, axis=[1, 2, 3])
    label = tf.reduce_max(tumour, axis=[1, 2, 3])
    has_tumour = tf.maximum(tf.reduce_sum(label), 1.0)
    prob = tf.sigmoid(lesion_logits)
    overlap = tf.reduce_sum(prob * tumour, axis=[1, 2, 3])
    total = tf.reduce_sum(prob + tumour, axis=[1, 2, 3])
    dice = 1.0 - (2.0 * overlap + 1.0) / (total + 1.0)
    near = tf.nn.max_pool2d(tumour, 2 * TUMOUR_MARGIN_CELLS + 1, 1, "SAME")  # the tumour and the cells around it
    inside = tf.reduce_max(tf.where(tumour > 0.5, lesion_logits, -1e4), axis=[1, 2, 3])
    outside = tf.reduce_max(tf.where(near > 0.5, -1e4, lesion_logits), axis=[1, 2, 3])
    has_twin = tf.cast(twin_of >= 0, tf.float32)
    twin_index = tf.maximum(twin_of, 0)
    twin_score = tf.gather(score, twin_index)
    twin_cells = tf.nn.softplus(tf.gather(lesion_logits, twin_index) - lesion_logits + 1.0)
    twin_cells = tf.reduce_sum(twin_cells * tumour, axis=[1, 2, 3]) / tf.maximum(tf.reduce_sum(tumour, axis=[1, 2, 3]), 1.0)
    twins = tf.maximum(tf.reduce_sum(has_twin), 1.0)
    pancreas_ce = tf.nn.sigmoid_cross_entropy_with_logits(pancreas, pancreas_logits) * pancreas_weight
    free = tf.reshape(tf.where(near > 0.5, -1e4, lesion_logits), [tf.shape(lesion_logits)[0], -1])
    hottest = tf.math.top_k(free, k=HARD_CELLS).values
    return {
        "pancreas": tf.reduce_sum(pancreas_ce) / tf.maximum(tf.reduce_sum(pancreas_weight), 1.0),
        "tumour_map": tf.reduce_mean(tf.nn.weighted_cross_entropy_with_logits(tumour, lesion_logits, pos_weight=weights.tumour_pos_weight)) * 5.0,
        "tumour_dice": tf.reduce_sum(dice * label) / has_tumour,
        "slice": tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(label, score)),
        "rank_in_slice": tf.reduce_sum(tf.nn.softplus(outside - inside + 2.0) * label) / has_tumour * 0.5,
        "rank_twin": tf.reduce_sum(tf.nn.softplus(twin_score - score + 2.0) * has_twin) / twins * weights.rank_twin,
        "twin_cells": tf.reduce_sum(twin_cells * has_twin) / twins * weights.twin_cells,
        "hard_negatives": tf.reduce_mean(tf.nn.softplus(hottest)) * weights.hard_negatives,
    }


def make_train_step(backbone: tf.keras.Model, optimizer: tf.keras.optimizers.Optimizer, weights: LossWeights = LossWeights()):
    """One optimisation step on a batch; returns the total loss and its parts."""

    @tf.function
    def step(images, tumour, pancreas, pancreas_weight, twin_of):
        with tf.GradientTape() as tape:
            pancreas_logits, lesion_logits = (tf.cast(x, tf.float32) for x in backbone(images, training=True))
            parts = losses(tumour, pancreas, pancreas_weight, twin_of, pancreas_logits, lesion_logits, weights)
            total = tf.add_n(list(parts.values()))
        grads = tape.gradient(total, backbone.trainable_variables)
        optimizer.apply_gradients(zip(grads, backbone.trainable_variables))
        return total, parts

    return step


FALSE_ALARM_LEVEL = 0.5  # a map cell at this tumour probability or above, away from any tumour
FALSE_ALARMS_PER_SLICE = 3
SPOT_CELLS = 3  # a false alarm is a cell that is the hottest of the 3x3 cells around it: one per hot spot


def false_alarm_spots(backbone, data, batch: int = 16) -> dict[int, np.ndarray]:
    """Where the model scores a tumour on its own training slices and there is none: slice index ->
    the (row, column) in the 256-pixel model input of the centres of its hottest such spots (at most
    FALSE_ALARMS_PER_SLICE, each the hottest cell of its neighbourhood)."""
    spots = {}
    for start in range(0, len(data.images), batch):
        images = data.images[start:start + batch].astype(np.float32)[..., None]
        logits = tf.cast(backbone(images, training=False)[1], tf.float32)
        tumour = data.tumour[start:start + batch].astype(np.float32)[..., None]
        near = tf.nn.max_pool2d(tf.nn.max_pool2d(tumour, MAP_STRIDE, MAP_STRIDE, "VALID"), 2 * TUMOUR_MARGIN_CELLS + 1, 1, "SAME")
        free = tf.where(near > 0.5, -1e4, logits)
        peaks = (free >= tf.nn.max_pool2d(free, SPOT_CELLS, 1, "SAME")) & (tf.sigmoid(free) >= FALSE_ALARM_LEVEL)
        for offset, (cells, peak) in enumerate(zip(free.numpy()[..., 0], peaks.numpy()[..., 0])):
            hottest = sorted(zip(*np.nonzero(peak)), key=lambda cell: -cells[cell])[:FALSE_ALARMS_PER_SLICE]
            if hottest:
                spots[start + offset] = np.array(hottest) * MAP_STRIDE + MAP_STRIDE // 2
    return spots


def fit(backbone: tf.keras.Model, data, config: TrainConfig, log=print) -> list[dict]:
    """The training loop; returns the smoothed losses every 50 steps."""
    schedule = tf.keras.optimizers.schedules.CosineDecay(config.learning_rate, config.steps, alpha=0.02)
    step = make_train_step(backbone, tf.keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay), config.weights)
    history, running, started = [], None, time.monotonic()
    # A plain loop: tf.data's generator thread fought TensorFlow for the two cores (1.5x slower).
    source = batches(data, config.mix, config.crop, config.seed)
    mine_at = int(config.mine_false_alarms_at * config.steps)
    for index in range(config.steps):
        if mine_at and index == mine_at:
            data.false_alarms.update(false_alarm_spots(backbone, data))
            log(f"false alarms mined at step {index}: {sum(map(len, data.false_alarms.values()))} places on "
                f"{len(data.false_alarms)} of {len(data.images)} training slices")
        batch = next(source)
        total, parts = step(batch.images, batch.tumour, batch.pancreas, batch.pancreas_weight, batch.twin_of)
        values = {k: float(v) for k, v in parts.items()} | {"total": float(total)}
        running = values if running is None else {k: 0.95 * running[k] + 0.05 * values[k] for k in values}
        if (index + 1) % 50 == 0 or index == 0:
            history.append({"step": index + 1, **running})
            log(f"step {index + 1}/{config.steps} " + " ".join(f"{k} {v:.3f}" for k, v in running.items())
                + f" ({time.monotonic() - started:.0f} s)")
    return history


def train_backbone(msd: list, nih: list, config: TrainConfig, seed: int, log=print) -> tuple[tf.keras.Model, list[dict]]:
    """A backbone trained on these slices (float32 weights, whatever the precision of the steps)."""
    data = prepare(msd, nih, np.random.default_rng(seed), config.transplants)
    log(f"prepared {len(data.images)} slices with twins and transplants")
    tf.keras.utils.set_random_seed(seed)
    tf.keras.mixed_precision.set_global_policy(config.precision)
    try:
        backbone = build_backbone(size=None, width=config.width)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    history = fit(backbone, data, replace(config, seed=seed), log)
    if config.precision == "float32":
        return backbone, history
    weights = backbone.get_weights()
    backbone = build_backbone(size=None, width=config.width)
    backbone.set_weights(weights)
    return backbone, history


def export_and_calibrate(backbone, out_dir: Path, metadata: dict, splits: Splits, msd, nih, log=print) -> dict:
    """Export ``backbone`` to ``out_dir`` and fit what is fitted on held-out cases (calibration,
    threshold, OOD limits, series rule) through the exported models; writes pancscan.json."""
    _export(backbone, out_dir / "pancscan.tflite")
    train_msd, train_nih = splits.slices("train", msd, nih)
    train_inputs = [to_model_input(s.image) for s in train_msd + train_nih]
    specificity = metadata["training"]["config"]["specificity"]
    held_out = [(path, fold.slices("val", msd, nih)) for path, fold in held_out_models(out_dir / "pancscan.tflite", splits)]
    metadata |= calibrate_on_held_out(out_dir / "pancscan.tflite", held_out, train_inputs, metadata, specificity, log)
    (out_dir / "pancscan.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def _export(backbone, path: Path) -> None:
    """The inference graph of ``backbone`` (the slice and its mirror image) as the .tflite at ``path``."""
    export_model(build_inference_model(backbone, batch_size=1), path)


def _export_fold(backbone, fold_dir: Path) -> None:
    fold_dir.mkdir(parents=True, exist_ok=True)
    backbone.save_weights(fold_dir / "pancscan.weights.h5")
    _export(backbone, fold_dir / "pancscan.tflite")


def reexport(model_dir: str | Path, nih_dir: str | Path, msd_dir: str | Path, log=print) -> dict:
    """`pancscan export`: a trained model's weights (pancscan.weights.h5 beside its pancscan.json, and
    its fold models' under folds/) exported and calibrated again in place, as this version of
    `pancscan train` would; its split and training record are kept, its version becomes this one's."""
    model_dir = Path(model_dir)
    old = json.loads((model_dir / "pancscan.json").read_text())
    msd, nih = load_msd_slices(msd_dir), load_nih_slices(nih_dir)
    splits, width = Splits.from_json(old["split"]), old["training"]["config"].get("width", 1.0)
    if splits.folds:
        for path, _ in held_out_models(model_dir / "pancscan.tflite", splits):
            fold = build_backbone(size=None, width=width)
            fold.load_weights(path.with_suffix(".weights.h5"))
            _export(fold, path)
    backbone = build_backbone(size=None, width=width)
    backbone.load_weights(model_dir / "pancscan.weights.h5")
    keep = ("name", "input", "window", "outputs", "split", "training", "research_use_only")
    metadata = {key: old[key] for key in keep} | {"version": MODEL_VERSION + "+" + old["version"].split("+", 1)[1]}
    return export_and_calibrate(backbone, model_dir, metadata, splits, msd, nih, log)


def train(nih_dir: str | Path, msd_dir: str | Path, out_dir: str | Path, config: TrainConfig = TrainConfig(), log=print) -> dict:
    """Train (the fold models first when cross-fitting), calibrate, export. Returns the metadata
    written beside the model."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    msd, nih = load_msd_slices(msd_dir), load_nih_slices(nih_dir)
    splits = make_splits(msd, nih, config.seed, config.msd_val, config.msd_test, config.nih_val, config.nih_test)
    if config.folds > 1:
        splits = splits.cross_fitted(config.folds, config.seed)
    if config.fold:
        splits = splits.fold_splits()[config.fold - 1]
    for part in ("train", "val", "test"):
        m, n = splits.slices(part, msd, nih)
        log(f"{part}: MSD {len(splits.msd[part])} cases ({len(m)} tumour slices), NIH {len(splits.nih[part])} patients ({len(n)} slices)")

    for k, fold in enumerate(splits.fold_splits(), 1):
        log(f"fold {k} of {config.folds}: held out MSD {len(fold.msd['val'])} cases, NIH {len(fold.nih['val'])} patients")
        backbone, _ = train_backbone(*fold.slices("train", msd, nih), config, config.seed + k, log)
        _export_fold(backbone, out_dir / "folds" / str(k))
    backbone, history = train_backbone(*splits.slices("train", msd, nih), config, config.seed + config.fold, log)
    metadata = {
        "name": "pancscan-slice",
        # the configuration's hash tells models trained with different settings apart
        "version": f"{MODEL_VERSION}+" + hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:8],
        "input": {"size": [MODEL_SIZE, MODEL_SIZE], "channels": 1, "range": [0.0, 1.0],
                  "convention": "grey = Hounsfield units clipped to 0..255, scaled to 0..1",
                  "orientation": "radiological; both vertical orientations trained"},
        "window": {"center_hu": WINDOW_CENTER_HU, "width_hu": WINDOW_WIDTH_HU},
        "outputs": {"score_logit": "max of the tumour map (logit)", "heatmap": "64x64 tumour probability map",
                    "pancreas_max": "max pancreas probability"},
        "split": splits.as_json(),
        "training": {"config": asdict(config), "seconds": round(time.monotonic() - started, 1),
                     "data_sha256": data_hash(nih_dir, msd_dir)},
        "research_use_only": True,
    }
    backbone.save_weights(out_dir / "pancscan.weights.h5")
    metadata = export_and_calibrate(backbone, out_dir, metadata, splits, msd, nih, log)
    (out_dir / "history.json").write_text(json.dumps(history) + "\n")
    log(f"done in {time.monotonic() - started:.0f} s")
    return metadata
