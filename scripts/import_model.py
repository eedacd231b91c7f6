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
from typing import Any, Sequence

import numpy as np

from predict import check_predictions
from trtverify.backends import open_runner
from trtverify.errors import UserError, run_main
from trtverify.io import atomic_path, load_npy, save_npy, write_json


PROBE = 8  # samples run through the model at import: enough to show it loads, fits the data and gives numbers


def check_input(runner: Any, saved_model: Path) -> None:
    """The one input must take floats: the samples are float32 all the way to TensorRT, so a token-id model would
    otherwise fail inside TensorFlow with a long traceback."""
    spec = runner.fn.structured_input_signature[1][runner.input_name]
    if not spec.dtype.is_floating:
        raise UserError(f"{saved_model}: the serving_default input '{runner.input_name}' takes {spec.dtype.name} "
                        f"{tuple(spec.shape.as_list())}; trtverify supports one float input (images, features), "
                        "not integer inputs such as token ids. Export a signature that takes float32 (casting inside "
                        "the model), or compare such a model with another tool")


def check_model(saved_model: Path, probe: np.ndarray) -> int:
    """Load the SavedModel as the predict step will and run a few samples: a corrupt model, a missing signature,
    an input the pipeline cannot feed or samples that do not fit fail here, before anything is written, not steps
    later. Returns the number of classes."""
    with open_runner("savedmodel", saved_model) as runner:
        check_input(runner, saved_model)
        out = runner.infer(probe)
    check_predictions(out, len(probe), f"savedmodel {saved_model}")   # (samples, classes), finite: as predict
    if out.shape[1] < 2:
        raise UserError(f"{saved_model}: the serving_default signature returns shape {out.shape}; trtverify "
                        "compares classifiers, (N, classes) with at least 2 classes")
    return int(out.shape[1])


def select(x: np.ndarray, y: np.ndarray, wanted: str, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """The first ``wanted`` samples ('all' or a number), as train.py keeps them; more than there are is refused,
    never silently clamped (the metrics would record a count the data does not have)."""
    if len(x) == 0:
        raise UserError(f"test samples {args.samples_in} hold 0 samples; trtverify needs at least one to compare "
                        "the formats: save the test set with numpy.save")
    if wanted == "all":
        return x, y
    if not (wanted.isdigit() and int(wanted) >= 1):
        raise UserError(f"num_test_samples must be 'all' or a positive number, got {wanted!r}")
    if int(wanted) > len(x):
        raise UserError(f"num_test_samples is {wanted}, but {args.samples_in} holds {len(x)} samples; set "
                        f"num_test_samples to 'all' or at most {len(x)} in config.yaml")
    return x[:int(wanted)], y[:int(wanted)]


def layout(x: np.ndarray) -> str:
    """How the user's samples were laid out; save_npy writes C order, which the C++ program needs."""
    if x.flags.c_contiguous:
        return "C order"
    return "Fortran order, converted to C order" if x.flags.f_contiguous else "strided, converted to C order"


def load_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    x = load_npy(args.samples_in, what="test samples", finite=True)
    y = load_npy(args.labels_in, what="test labels", ndim=1)
    if x.dtype.kind != "f" or x.ndim < 2:
        raise UserError(f"test samples {args.samples_in} must be a float array of shape (N, ...), got "
                        f"{x.dtype} {x.shape}")
    if y.dtype.kind not in "iu":
        raise UserError(f"test labels {args.labels_in} must be integers, got {y.dtype}")
    if len(x) != len(y):
        raise UserError(f"{len(x)} test samples but {len(y)} labels")
    return (*select(x, y, args.num_test_samples, args), layout(x))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--saved-model-in", "--samples-in", "--labels-in", "--saved-model", "--samples", "--labels",
                 "--metrics"):
        p.add_argument(name, required=True)
    p.add_argument("--num-test-samples", default="all", help="'all' or a number: how many test samples to keep")
    args = p.parse_args(argv)
    src = Path(args.saved_model_in)
    if not (src / "saved_model.pb").is_file():
        raise UserError(f"{src} is not a SavedModel directory (no saved_model.pb); export one with "
                        "model.export(dir) (Keras 3) or tf.saved_model.save")
    x, y, samples_layout = load_data(args)
    with atomic_path(args.saved_model, directory=True) as tmp:
        # The copy is checked, not the original: TensorFlow reads a SavedModel's variables through a glob, so a
        # user folder whose name holds glob characters ('\\', '[', '*', '?') would not load, while the copy's does.
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        try:
            classes = check_model(tmp, x[:PROBE].astype(np.float32))
        except UserError as exc:  # name the user's folder, not the copy
            raise UserError(str(exc).replace(str(tmp), str(src))) from None
        if y.min() < 0 or y.max() >= classes:
            raise UserError(f"test labels {args.labels_in} range over {int(y.min())}..{int(y.max())}, but the "
                            f"model outputs {classes} classes (labels must be 0..{classes - 1})")
    save_npy(args.samples, x.astype(np.float32))
    save_npy(args.labels, y.astype(np.int64))
    write_json(args.metrics, {"imported_from": str(src), "test_samples": int(len(x)),
                              "input_shape": list(x.shape[1:]), "classes": classes,
                              "samples_layout": samples_layout})
    return 0


if __name__ == "__main__":
    run_main(main)
