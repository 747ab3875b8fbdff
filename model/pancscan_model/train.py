"""Training: paired samples (lesioned slice and lesion-free twin), two supervised heads.

Then, on the validation patients: Platt calibration, the threshold at 95% specificity, and the
out-of-distribution ranges; then export of the .tflite and its metadata.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from pancscan.imaging import to_model_input
from pancscan.ood import fit_ranges, slice_features
from pancscan_model import metrics
from pancscan_model.data import CTSlice, data_hash, load_nih_slices, split_patients
from pancscan_model.export import export_model
from pancscan_model.network import build_backbone, build_inference_model
from pancscan_model.samples import evaluation_cases, training_pair
from pancscan_model.series_rule import fit_series_rule

@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 28
    steps_per_epoch: int = 100
    pairs_per_batch: int = 12
    crop: int | None = 128  # train on crop x crop windows (mostly around the lesion); 0 or None: whole slices
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 20261127
    val_patients: int = 8
    test_patients: int = 8
    specificity: float = 0.95
    eval_variants: int = 3


def batches(slices: list[CTSlice], pairs: int, seed: int, crop: int | None = None):
    """Endless batches of ``pairs`` lesioned/normal twins: (images, pancreas, lesion, labels)."""
    rng = np.random.default_rng(seed)
    while True:
        parts = [training_pair(slices[rng.integers(len(slices))], rng, crop) for _ in range(pairs)]
        images, pancreas, lesion = (np.concatenate([p[i] for p in parts])[..., None] for i in range(3))
        yield images, pancreas, lesion, np.concatenate([p[3] for p in parts])


def losses(pancreas_true, lesion_true, labels, pancreas_logits, lesion_logits) -> dict[str, tf.Tensor]:
    """Organ map per cell; lesion map per cell and as a Dice overlap; slice score; twin ranking.

    The Dice term gives every lesion, however small, a strong gradient: with cell-wise
    cross-entropy alone the lesion head had not started learning after 450 steps.
    """
    image_logit = tf.reduce_max(lesion_logits, axis=[1, 2, 3])
    # batches alternate normal, lesioned: the lesioned twin must outscore its normal twin
    normal, sick = image_logit[0::2], image_logit[1::2]
    lesion_prob = tf.sigmoid(lesion_logits)[1::2]
    overlap = tf.reduce_sum(lesion_prob * lesion_true[1::2], axis=[1, 2, 3])
    total = tf.reduce_sum(lesion_prob + lesion_true[1::2], axis=[1, 2, 3])
    return {
        "pancreas": tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(pancreas_true, pancreas_logits)),
        "lesion_map": tf.reduce_mean(tf.nn.weighted_cross_entropy_with_logits(lesion_true, lesion_logits, pos_weight=20.0)) * 5.0,
        "lesion_dice": tf.reduce_mean(1.0 - (2.0 * overlap + 1.0) / (total + 1.0)),
        "slice": tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, image_logit)),
        "twin_rank": tf.reduce_sum(tf.nn.softplus(normal - sick + 2.0) * labels[1::2])
        / tf.maximum(tf.reduce_sum(labels[1::2]), 1.0) * 0.5,
    }


def make_train_step(backbone: tf.keras.Model, optimizer: tf.keras.optimizers.Optimizer):
    """One optimisation step on a batch; returns the total loss and its parts."""

    @tf.function
    def step(images, pancreas, lesion, labels):
        with tf.GradientTape() as tape:
            pancreas_logits, lesion_logits = backbone(images, training=True)
            parts = losses(pancreas, lesion, labels, pancreas_logits, lesion_logits)
            total = tf.add_n(list(parts.values()))
        grads = tape.gradient(total, backbone.trainable_variables)
        optimizer.apply_gradients(zip(grads, backbone.trainable_variables))
        return total, parts

    return step


def train(data_dir: str | Path, out_dir: str | Path, config: TrainConfig = TrainConfig(), log=print) -> dict:
    """Train, calibrate, export. Returns the metadata written beside the model."""
    tf.keras.utils.set_random_seed(config.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slices = load_nih_slices(data_dir)
    split = split_patients([s.patient for s in slices], config.seed, config.val_patients, config.test_patients)
    by_split = {name: [s for s in slices if s.patient in set(patients)] for name, patients in split.items()}
    log(f"patients train/val/test: {len(split['train'])}/{len(split['val'])}/{len(split['test'])}; "
        f"slices {len(by_split['train'])}/{len(by_split['val'])}/{len(by_split['test'])}")

    backbone = build_backbone(size=None)
    steps = config.epochs * config.steps_per_epoch
    schedule = tf.keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.02)
    optimizer = tf.keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    step = make_train_step(backbone, optimizer)

    history = []
    started = time.monotonic()
    running = None
    # A plain loop: tf.data's generator thread fought TensorFlow for the two cores (1.5x slower).
    train_batches = batches(by_split["train"], config.pairs_per_batch, config.seed, config.crop)
    for index in range(steps):
        total, parts = step(*next(train_batches))
        values = {k: float(v) for k, v in parts.items()} | {"total": float(total)}
        running = values if running is None else {k: 0.95 * running[k] + 0.05 * values[k] for k in values}
        if (index + 1) % 50 == 0 or index == 0:
            history.append({"step": index + 1, **running})
            log(f"step {index + 1}/{steps} " + " ".join(f"{k} {v:.4f}" for k, v in running.items())
                + f" ({time.monotonic() - started:.0f} s)")
    training_seconds = time.monotonic() - started
    backbone.save_weights(out_dir / "pancscan.weights.h5")

    metadata = calibrate_and_export(backbone, by_split, split, config, out_dir, log)
    metadata["training"] |= {"seconds": round(training_seconds, 1), "data_sha256": data_hash(data_dir)}
    (out_dir / "pancscan.json").write_text(json.dumps(metadata, indent=2) + "\n")
    (out_dir / "history.json").write_text(json.dumps(history) + "\n")
    metadata["series"] = fit_series_rule(data_dir, out_dir / "pancscan.tflite", log=log)
    return metadata


def score_cases(model: tf.keras.Model, images: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Slice score logits and pancreas maxima for (N, 256, 256) inputs with a batched Keras model."""
    logits, pancreas = [], []
    for i in range(0, len(images), batch):
        out = model(images[i : i + batch, ..., None], training=False)
        logits.append(np.asarray(out["score_logit"])[:, 0])
        pancreas.append(np.asarray(out["pancreas_max"])[:, 0])
    return np.concatenate(logits), np.concatenate(pancreas)


def calibrate_and_export(backbone, by_split, split, config: TrainConfig, out_dir: Path, log=print) -> dict:
    batched = build_inference_model(backbone, batch_size=None)
    cases = evaluation_cases(by_split["val"], config.seed + 1, variants=config.eval_variants)
    labels = np.array([c.label for c in cases])
    logits, _ = score_cases(batched, np.stack([c.image for c in cases]))
    a, b = metrics.fit_platt(logits, labels)
    probs = metrics.calibrate(logits, a, b)
    threshold = metrics.threshold_at_specificity(labels, probs, config.specificity)
    log(f"validation: AUROC {metrics.auroc(labels, probs):.3f}, ECE {metrics.expected_calibration_error(labels, probs):.3f}, "
        f"threshold {threshold:.3f}, sensitivity {np.mean(probs[labels == 1] >= threshold):.3f}")

    train_inputs = np.stack([to_model_input(s.image) for s in by_split["train"]])
    ranges = fit_ranges([slice_features(x) for x in train_inputs])
    _, pancreas_train = score_cases(batched, train_inputs)
    # The lowest pancreas confidence seen on real training slices, with room to spare.
    pancreas_min = float(max(0.05, np.min(pancreas_train) * 0.5))

    metadata = {
        "name": "pancscan-slice",
        # the configuration's hash tells models trained with different settings apart
        "version": "0.1.0+" + hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:8],
        "input": {"size": [256, 256], "channels": 1, "range": [0.0, 1.0], "orientation": "radiological; both vertical orientations trained"},
        "window": {"center_hu": 40.0, "width_hu": 400.0},
        "outputs": {"score_logit": "max of the lesion map (logit)", "heatmap": "64x64 lesion probability map",
                    "pancreas_max": "max pancreas probability"},
        "calibration": {"method": "platt", "a": a, "b": b, "fitted_on": "validation patients, simulated lesions"},
        "threshold": threshold,
        "operating_point": f"{config.specificity:.0%} specificity on validation patients",
        "ood": {"ranges": ranges, "pancreas_min": pancreas_min},
        "split": split,
        "training": {"config": asdict(config), "steps": config.epochs * config.steps_per_epoch},
        "research_use_only": True,
    }
    export_model(build_inference_model(backbone, batch_size=1), out_dir / "pancscan.tflite")
    return metadata
