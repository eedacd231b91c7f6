"""The reference VGG-style CNN: stacked Conv-BN-ReLU blocks, max-pooling, dropout, a dense head, softmax."""

from __future__ import annotations

from typing import Any, Mapping

from .schema import Entry


def build_vgg(input_shape: tuple[int, ...], num_classes: int, architecture: Mapping[str, Any]) -> Any:
    """``architecture``: models.<name>.architecture of the config; what it leaves out takes the schema's default."""
    import keras
    from keras import layers

    arch = Entry(architecture, "models.*.architecture")

    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for i, filters in enumerate(arch["blocks"]):
        for j in range(int(arch["convs_per_block"])):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=not arch["batch_norm"],
                              name=f"block{i + 1}_conv{j + 1}")(x)
            if arch["batch_norm"]:
                x = layers.BatchNormalization(name=f"block{i + 1}_bn{j + 1}")(x)
            x = layers.ReLU(name=f"block{i + 1}_relu{j + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"block{i + 1}_pool")(x)
        x = layers.Dropout(float(arch["block_dropout"]), name=f"block{i + 1}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(int(arch["dense_units"]), activation="relu", name="dense")(x)
    x = layers.Dropout(float(arch["dropout"]), name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="vgg_style_cnn")
