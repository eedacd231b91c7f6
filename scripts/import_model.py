#!/usr/bin/env python3
"""Bring the user's own SavedModel and test data into results/, checked, instead of training one.

  python scripts/import_model.py --saved-model-in DIR --samples-in X.npy --labels-in Y.npy \
      --saved-model results/M/saved_model --samples ... --labels ... --metrics ...
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from trtverify.errors import UserError, run_main
from trtverify.io import atomic_path, load_npy, save_npy, write_json


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
    with atomic_path(args.saved_model, directory=True) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    save_npy(args.samples, x.astype(np.float32))
    save_npy(args.labels, y.astype(np.int64))
    write_json(args.metrics, {"imported_from": str(src), "test_samples": int(len(x)),
                              "input_shape": list(x.shape[1:])})
    return 0


if __name__ == "__main__":
    run_main(main)
