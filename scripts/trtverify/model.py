"""The reference VGG-style CNN: stacked Conv-BN-ReLU blocks, max-pooling, dropout, a dense head, softmax."""

from __future__ import annotations

from typing import Any


def build_vgg(input_shape: tuple[int, ...], num_classes: int, arch: dict[str, Any]) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for i, filters in enumerate(arch["blocks"]):
        for j in range(int(arch.get("convs_per_block", 2))):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=not arch.get("batch_norm", True),
                              name=f"block{i + 1}_conv{j + 1}")(x)
            if arch.get("batch_norm", True):
                x = layers.BatchNormalization(name=f"block{i + 1}_bn{j + 1}")(x)
            x = layers.ReLU(name=f"block{i + 1}_relu{j + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"block{i + 1}_pool")(x)
        x = layers.Dropout(float(arch.get("block_dropout", 0.1)), name=f"block{i + 1}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(int(arch["dense_units"]), activation="relu", name="dense")(x)
    x = layers.Dropout(float(arch.get("dropout", 0.3)), name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="vgg_style_cnn")
