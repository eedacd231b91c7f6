#!/usr/bin/env python3
"""Train the reference VGG-style CNN and export a SavedModel plus fixed test samples, labels and metrics.

  python scripts/train.py --dataset '{"source": "digits"}' --architecture '{...}' --training '{...}' \
      --saved-model results/M/saved_model --samples results/M/data/test_samples.npy \
      --labels results/M/data/test_labels.npy --metrics results/M/train_metrics.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from trtverify import datasets
from trtverify.errors import UserError, require, run_main
from trtverify.io import atomic_path, save_npy, write_json
from trtverify.schema import Entry, parse_with_defaults


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="JSON: the dataset's config entry (source, options)")
    p.add_argument("--architecture", required=True, help="JSON: blocks, convs_per_block, dense_units, ...")
    p.add_argument("--training", required=True, help="JSON: epochs, batch_size, learning_rate, seed")
    p.add_argument("--num-test-samples", help="'all' or a number: how many test samples to keep")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--saved-model", required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--metrics", required=True)
    return parse_with_defaults(p, argv, {"num_test_samples": "models.*.num_test_samples"})


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_fraction(value: Any, *, zero: bool, one: bool) -> bool:
    """A number in [0, 1] with the ends included as asked."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and (0 <= value if zero else 0 < value) and (value <= 1 if one else value < 1))


def _check(section: str, config: dict[str, Any], key: str, ok: Callable[[Any], bool], expected: str,
           required: bool = False) -> None:
    if key not in config:
        if required:
            raise UserError(f"{section}.{key} is missing; set it to {expected} in config.yaml")
        return
    if not ok(config[key]):
        raise UserError(f"{section}.{key} must be {expected}, got {json.dumps(config[key])}; fix it in config.yaml")


def check_config(dataset: Any, arch: Any, training: Any, num_test_samples: str) -> None:
    """Refuse a bad config value before training, as config/schema.yaml does for Snakemake runs."""
    for flag, value in (("--dataset", dataset), ("--architecture", arch), ("--training", training)):
        if not isinstance(value, dict):
            raise UserError(f"{flag} must be a JSON object, got {json.dumps(value)}")
    if not isinstance(dataset.get("source"), str):
        raise UserError("the dataset entry has no 'source' (digits or cifar10); add one under datasets in config.yaml")
    positive = "a positive integer"
    _check("architecture", arch, "blocks", lambda v: isinstance(v, list) and bool(v) and all(_is_int(b, 1) for b in v),
           "a non-empty list of positive filter counts like [32, 64]", required=True)
    _check("architecture", arch, "dense_units", lambda v: _is_int(v, 1), positive, required=True)
    _check("architecture", arch, "convs_per_block", lambda v: _is_int(v, 1), positive)
    for key in ("dropout", "block_dropout"):
        _check("architecture", arch, key, lambda v: _is_fraction(v, zero=True, one=False), "a number in [0, 1)")
    _check("training", training, "epochs", lambda v: _is_int(v, 1), positive, required=True)
    _check("training", training, "batch_size", lambda v: _is_int(v, 1), positive, required=True)
    _check("training", training, "learning_rate", lambda v: _is_fraction(v, zero=False, one=True), "a number in (0, 1]")
    _check("training", training, "seed", lambda v: _is_int(v, 0), "a non-negative integer")
    if num_test_samples != "all" and not (num_test_samples.isdigit() and int(num_test_samples) >= 1):
        raise UserError(f"num_test_samples must be 'all' or a positive number, got {num_test_samples!r}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        dataset, arch, training = (json.loads(s) for s in (args.dataset, args.architecture, args.training))
    except json.JSONDecodeError as exc:
        raise UserError(f"--dataset/--architecture/--training must be JSON ({exc})") from None
    tf = require("tensorflow", purpose="training", hint="Run it in the TensorFlow container or pip install tensorflow")
    check_config(dataset, arch, training, str(args.num_test_samples))
    import keras

    from trtverify.model import build_vgg

    training = Entry(training, "models.*.training")
    seed = int(training["seed"])
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()  # same config, same weights: reruns and cluster runs agree
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    data = datasets.load(dataset["source"], dataset, seed)
    keep = len(data.x_test) if str(args.num_test_samples) == "all" else int(args.num_test_samples)
    if keep > len(data.x_test):  # refused, not clamped: train_metrics.json would record a count we do not have
        raise UserError(f"num_test_samples is {keep}, but the {dataset['source']} test split has {len(data.x_test)} "
                        f"samples; set num_test_samples to 'all' or at most {len(data.x_test)} in config.yaml")
    x_test, y_test = data.x_test[:keep], data.y_test[:keep]

    model = build_vgg(data.x_train.shape[1:], len(data.class_names), arch)
    model.compile(optimizer=keras.optimizers.Adam(float(training["learning_rate"])),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(data.x_train, data.y_train, epochs=int(training["epochs"]),
                        batch_size=int(training["batch_size"]), validation_split=0.1, shuffle=True, verbose=2)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    probs = model.predict(x_test, batch_size=256, verbose=0)
    if not np.isfinite(probs).all():
        raise UserError("training produced NaN/Inf outputs; lower training.learning_rate in config.yaml")

    with atomic_path(args.saved_model, directory=True) as tmp:
        model.export(str(tmp), verbose=False)
    save_npy(args.samples, x_test.astype(np.float32))
    save_npy(args.labels, y_test.astype(np.int64))
    write_json(args.metrics, {
        "dataset": dataset["source"], "train_samples": int(len(data.x_train)), "test_samples": int(keep),
        "input_shape": list(data.x_train.shape[1:]), "classes": list(data.class_names),
        "epochs": int(training["epochs"]), "train_seconds": round(seconds, 3),
        "test_loss": float(loss), "test_accuracy": float(accuracy),
        "final_train_accuracy": float(history.history["accuracy"][-1]),
        "parameters": int(model.count_params()),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    })
    print(f"trained {model.count_params()} parameters in {seconds:.1f} s; test accuracy {accuracy:.4f} "
          f"on {keep} samples", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run_main(main)
