"""The PancScan network: a small fully convolutional encoder-decoder with two heads.

- a pancreas head (supervised by the NIH masks, and on MSD slices by their tumours, which lie in
  the pancreas): finds the organ, and tells the runtime whether the slice shows a pancreas at all
  (part of the out-of-distribution check);
- a tumour head (supervised by the MSD tumour masks): a 64x64 map of tumour logits.

The slice score is the maximum of the lesion map, averaged over the slice and its left-right
mirror image (test-time augmentation inside the graph), so the exported model needs no gradients
and no Python-side post-processing other than the calibration in the metadata.
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

INPUT_SIZE = 256
MAP_SIZE = 64  # lesion and pancreas maps: one cell per 4x4 input pixels (about 5.6 mm)


def _conv(x, channels: int, stride: int = 1, dilation: int = 1):
    x = layers.Conv2D(channels, 3, strides=stride, dilation_rate=dilation, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def build_backbone(size: int | None = INPUT_SIZE, width: float = 1.0) -> keras.Model:
    """(N, size, size, 1) in 0..1 -> pancreas logits and tumour logits, each (N, size/4, size/4, 1).

    Fully convolutional: ``size=None`` accepts any multiple of 16 (training on crops). ``width``
    scales every layer's channels (parameters grow with its square: 228k at 1, 0.9M at 2, 2.0M at 3).
    """
    def c(channels: int) -> int:
        return round(channels * width)

    image = keras.Input((size, size, 1), name="image")
    x = layers.Rescaling(2.0, offset=-1.0)(image)
    x = _conv(x, c(16))
    x = _conv(x, c(24), stride=2)  # 128
    x = _conv(x, c(24))
    x = _conv(x, c(32), stride=2)  # 64
    skip64 = _conv(x, c(32))
    x = _conv(skip64, c(48), stride=2)  # 32
    x = _conv(x, c(48))
    skip32 = _conv(x, c(48), dilation=2)
    x = _conv(skip32, c(64), stride=2)  # 16
    x = _conv(x, c(64))
    x = _conv(x, c(64), dilation=2)
    x = layers.UpSampling2D(2)(x)
    x = layers.Add()([layers.Conv2D(c(48), 1)(x), skip32])
    x = _conv(x, c(48))
    x = layers.UpSampling2D(2)(x)
    x = layers.Add()([layers.Conv2D(c(32), 1)(x), skip64])
    x = _conv(x, c(32))
    # the logits in float32 also when the rest computes in bfloat16 (8 bits of mantissa): the losses rank them
    pancreas = layers.Conv2D(1, 1, name="pancreas_logits", dtype="float32")(x)
    lesion = _conv(layers.Concatenate()([x, pancreas]), c(32))
    lesion = layers.Conv2D(1, 1, name="lesion_logits", bias_initializer=keras.initializers.Constant(-4.0), dtype="float32")(lesion)
    return keras.Model(image, [pancreas, lesion], name="pancscan_backbone")


class MirrorAverage(layers.Layer):
    """Run the backbone on the slice and its mirror image; average the maps (un-mirrored)."""

    def __init__(self, backbone: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone

    def call(self, image):
        pancreas, lesion = self.backbone(image, training=False)
        pancreas_m, lesion_m = self.backbone(tf.reverse(image, axis=[2]), training=False)
        return (pancreas + tf.reverse(pancreas_m, axis=[2])) / 2, (lesion + tf.reverse(lesion_m, axis=[2])) / 2


def build_inference_model(backbone: keras.Model, batch_size: int | None = 1) -> keras.Model:
    """What is exported: (1, 256, 256, 1) -> score logit (1, 1), heatmap (1, 64, 64), pancreas max (1, 1).

    ``batch_size=None`` gives the same graph for batched scoring during training and tests.
    """
    image = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), batch_size=batch_size, name="image")
    pancreas, lesion = MirrorAverage(backbone)(image)
    score = layers.GlobalMaxPooling2D(name="score_logit")(lesion)
    heatmap = layers.Reshape((MAP_SIZE, MAP_SIZE), name="heatmap")(layers.Activation("sigmoid")(lesion))
    pancreas_max = layers.GlobalMaxPooling2D(name="pancreas_max")(layers.Activation("sigmoid")(pancreas))
    return keras.Model(image, {"score_logit": score, "heatmap": heatmap, "pancreas_max": pancreas_max})
