#!/usr/bin/env python3
"""Bring the user's own SavedModel and test data into results/, checked, instead of training one.

The SavedModel is loaded as the predict step loads it (serving_default) and run on the first few samples, so a
corrupt model, a missing signature, samples of the wrong shape or labels beyond its classes fail here.

  python scripts/import_model.py --saved-model-in DIR --samples-in X.npy --labels-in Y.npy \
      --saved-model results/M/saved_model --samples ... --labels ... --metrics ...
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from predict import check_predictions
from trtverify.backends import open_runner
from trtverify.errors import UserError, run_main
from trtverify.io import atomic_path, load_npy, save_npy, write_json


PROBE = 8  # samples run through the model at import: enough to show it loads, fits the data and gives numbers


def check_model(saved_model: Path, probe: np.ndarray) -> int:
    """Load the SavedModel as the predict step will and run a few samples: a corrupt model, a missing signature or
    samples that do not fit fail here, before anything is written, not steps later. Returns the number of classes."""
    with open_runner("savedmodel", saved_model) as runner:
        out = runner.infer(probe)
    check_predictions(out, len(probe), f"savedmodel {saved_model}")   # (samples, classes), finite: as predict
    if out.shape[1] < 2:
        raise UserError(f"{saved_model}: the serving_default signature returns shape {out.shape}; trtverify "
                        "compares classifiers, (N, classes) with at least 2 classes")
    return int(out.shape[1])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--saved-model-in", "--samples-in", "--labels-in", "--saved-model", "--samples", "--labels",
                 "--metrics"):
        p.add_argument(name, required=True)
    args = p.parse_args(argv)
    src = Path(args.saved_model_in)
    if not (src / "saved_model.pb").is_file():
        raise UserError(f"{src} is not a SavedModel directory (no saved_model.pb); export one with "
                        "model.export(dir) (Keras 3) or tf.saved_model.save")
    x = load_npy(args.samples_in, what="test samples", finite=True)
    y = load_npy(args.labels_in, what="test labels", ndim=1)
    if x.dtype.kind != "f" or x.ndim < 2:
        raise UserError(f"test samples {args.samples_in} must be a float array of shape (N, ...), got "
                        f"{x.dtype} {x.shape}")
    if y.dtype.kind not in "iu":
        raise UserError(f"test labels {args.labels_in} must be integers, got {y.dtype}")
    if len(x) != len(y):
        raise UserError(f"{len(x)} test samples but {len(y)} labels")
    classes = check_model(src, x[:PROBE].astype(np.float32))
    if len(y) and (y.min() < 0 or y.max() >= classes):
        raise UserError(f"test labels {args.labels_in} range over {int(y.min())}..{int(y.max())}, but the model "
                        f"outputs {classes} classes (labels must be 0..{classes - 1})")
    with atomic_path(args.saved_model, directory=True) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    save_npy(args.samples, x.astype(np.float32))
    save_npy(args.labels, y.astype(np.int64))
    write_json(args.metrics, {"imported_from": str(src), "test_samples": int(len(x)),
                              "input_shape": list(x.shape[1:]), "classes": classes})
    return 0


if __name__ == "__main__":
    run_main(main)
