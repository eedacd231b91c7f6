#!/usr/bin/env python3
"""Bring the user's own SavedModel and test data into results/, checked, instead of training one.

The SavedModel is loaded as the predict step loads it (serving_default) and run on the first few samples, so a
corrupt model, a missing signature, samples of the wrong shape or labels beyond its classes fail here.

The samples are used where they are (results/M/data/test_samples.npy becomes a link to them) when they are a C-order
float32 .npy, all of it kept; otherwise a converted copy is written a batch at a time. The metrics' "samples" entry
is the manifest: source path, size, mtime, which of the two was done and why, and a digest of the samples.

  python scripts/import_model.py --saved-model-in DIR --samples-in X.npy --labels-in Y.npy \
      --saved-model results/M/saved_model --samples ... --labels ... --metrics ...
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trtverify.backends import open_runner
from trtverify.errors import UserError, run_main
from trtverify.io import NpyReader, NpyWriter, atomic_path, load_npy, save_npy, write_json
from trtverify.lanes import Lane, Task
from trtverify.predictions import check_predictions
from trtverify.schema import parse_with_defaults


CHUNK = 8 << 20  # bytes of samples read at a time: memory holds the model and two chunks, whatever the test set
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


class OrderedDigest:
    """blake2b of the chunks given, in the order given (the digest of their bytes one after another), hashed on a
    thread of its own while the next chunk is read, checked and written: hashlib lets go of the GIL while it
    hashes, and the hash, at ~0.8 GB/s, was most of the import of real-size samples (7.4 of 10.5 s for 6 GB of
    224x224 samples, 2026-12-06). One chunk is hashed at a time: memory holds it and the one being read."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)
        self._lane = Lane("digest")     # compare's lanes: one thread running what it is given, in order
        self._pending: Task | None = None

    def update(self, chunk: np.ndarray) -> None:
        """Hash ``chunk`` (C-contiguous) after those before it; it must not change until the next call returns."""
        self._wait()
        self._pending = self._lane.submit(self._hash.update, memoryview(chunk).cast("B"))

    def hexdigest(self) -> str:
        self._wait()
        return self._hash.hexdigest()

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def __enter__(self) -> OrderedDigest:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self._lane.close(cancel=kind is not None)


def count(samples: NpyReader, wanted: str, args: argparse.Namespace) -> int:
    """How many samples to keep, the first ones as train.py keeps them ('all' or a number); more than there are is
    refused, never silently clamped (the metrics would record a count the data does not have)."""
    if len(samples) == 0:
        raise UserError(f"test samples {args.samples_in} hold 0 samples; trtverify needs at least one to compare "
                        "the formats: save the test set with numpy.save")
    if wanted == "all":
        return len(samples)
    if not (wanted.isdigit() and int(wanted) >= 1):
        raise UserError(f"num_test_samples must be 'all' or a positive number, got {wanted!r}")
    if int(wanted) > len(samples):
        raise UserError(f"num_test_samples is {wanted}, but {args.samples_in} holds {len(samples)} samples; set "
                        f"num_test_samples to 'all' or at most {len(samples)} in config.yaml")
    return int(wanted)


def copy_reason(samples: NpyReader, n: int) -> str | None:
    """Why the samples cannot be used where they are (None: they can). Downstream steps and trt_infer read
    C-order little-endian float32, all of the file."""
    if samples.layout != "C order":
        return f"{samples.layout}, converted to C order"
    if samples.dtype != np.dtype("<f4"):
        return f"dtype {samples.dtype.str}, converted to float32"
    if n < len(samples):
        return f"the first {n} of {len(samples)} samples (num_test_samples)"
    return None


def open_data(args: argparse.Namespace) -> tuple[NpyReader, np.ndarray, int]:
    """The samples (opened, not read: a test set can be GBs), the labels and how many samples to keep."""
    x = NpyReader(args.samples_in, what="test samples", finite=True)
    y = load_npy(args.labels_in, what="test labels", ndim=1)
    if x.dtype.kind != "f" or len(x.shape) < 2:
        raise UserError(f"test samples {args.samples_in} must be a float array of shape (N, ...), got "
                        f"{x.dtype} {x.shape}")
    if y.dtype.kind not in "iu":
        raise UserError(f"test labels {args.labels_in} must be integers, got {y.dtype}")
    if len(x) != len(y):
        raise UserError(f"{len(x)} test samples but {len(y)} labels")
    n = count(x, args.num_test_samples, args)
    return x, y[:n], n


def write_samples(x: NpyReader, n: int, out: str) -> dict[str, Any]:
    """``out`` becomes a link to the user's file when it can be used as it is, else a converted copy, written a
    batch at a time. Either way every sample is checked (finite) and digested in one pass; the manifest says which
    was done and why. Snakemake sees an edit of the user's file through the import rule's input (the file itself)
    and, downstream, through the link (it compares the target's time)."""
    reason = copy_reason(x, n)
    with OrderedDigest() as digest:
        if reason is None:
            with atomic_path(out) as tmp:
                for _, batch in x.batches(x.rows_per(CHUNK)):   # a new array each: the one hashed stays as it is
                    digest.update(batch)
                hexdigest = digest.hexdigest()     # the last chunk hashed before the link is put in place
                tmp.unlink()
                os.symlink(x.path.resolve(), tmp)
        else:
            with NpyWriter(out, n) as writer:
                for _, batch in x.batches(x.rows_per(CHUNK), stop=n):
                    batch = batch.astype("<f4")
                    digest.update(batch)
                    writer.write(batch)
                hexdigest = digest.hexdigest()     # before the copy is renamed into place
    stat = x.path.stat()
    return {"source": str(x.path.resolve()), "source_bytes": stat.st_size, "source_mtime": stat.st_mtime,
            "mode": "in place" if reason is None else "converted copy", "reason": reason or "C-order float32",
            "blake2b_float32": hexdigest, "shape": [n, *x.shape[1:]]}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--saved-model-in", "--samples-in", "--labels-in", "--saved-model", "--samples", "--labels",
                 "--metrics"):
        p.add_argument(name, required=True)
    p.add_argument("--num-test-samples", help="'all' or a number: how many test samples to keep")
    args = parse_with_defaults(p, argv, {"num_test_samples": "models.*.num_test_samples"})
    src = Path(args.saved_model_in)
    if not (src / "saved_model.pb").is_file():
        raise UserError(f"{src} is not a SavedModel directory (no saved_model.pb); export one with "
                        "model.export(dir) (Keras 3) or tf.saved_model.save")
    x, y, n = open_data(args)
    with atomic_path(args.saved_model, directory=True) as tmp:
        # The copy is checked, not the original: TensorFlow reads a SavedModel's variables through a glob, so a
        # user folder whose name holds glob characters ('\\', '[', '*', '?') would not load, while the copy's does.
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        try:
            classes = check_model(tmp, x.read(0, min(PROBE, n)).astype(np.float32))
        except UserError as exc:  # name the user's folder, not the copy
            raise UserError(str(exc).replace(str(tmp), str(src))) from None
        if y.min() < 0 or y.max() >= classes:
            raise UserError(f"test labels {args.labels_in} range over {int(y.min())}..{int(y.max())}, but the "
                            f"model outputs {classes} classes (labels must be 0..{classes - 1})")
        # Inside the model's atomic block: a NaN found while streaming the samples leaves no model behind either.
        manifest = write_samples(x, n, args.samples)
        save_npy(args.labels, y.astype(np.int64))
    write_json(args.metrics, {"imported_from": str(src), "test_samples": n, "input_shape": list(x.shape[1:]),
                              "classes": classes, "samples": manifest,
                              "samples_layout": x.layout + ("" if x.c_order else ", converted to C order")})
    return 0


if __name__ == "__main__":
    run_main(main)
