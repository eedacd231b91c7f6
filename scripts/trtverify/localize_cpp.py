"""The TensorRT Python -> C++ hop of localization: the same debug engine run by trt_infer (--dump-outputs), its
intermediate tensors compared with the Python runner's layer by layer under the parity rule: one engine on one
input must give bit-identical tensors in both harnesses, so any differing bit is a harness defect (input layout,
batch split, a stale engine) and the first layer that differs is named.
"""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import UserError
from .io import load_npy, read_json
from .localize import Tap, hop_result, layer_errors, skipped_hop

PARITY_RULE = "bit-identical (same engine, same samples: Python and C++ must agree in every bit)"


def read_dump(folder: Path) -> dict[str, np.ndarray]:
    """{tensor name: array} from a trt_infer --dump-outputs folder; raises UserError on an incomplete or odd one."""
    index_path = folder / "index.json"
    if not index_path.is_file():
        raise UserError(f"{folder} has no index.json: trt_infer's dump is incomplete")
    index = read_json(index_path, what="trt_infer's dump index")
    files = index.get("tensors") if isinstance(index, dict) else None
    if not isinstance(files, dict):
        raise UserError(f"{index_path} has no 'tensors' mapping")
    out = {}
    for name, file in files.items():
        if not isinstance(file, str) or Path(file).name != file or file in ("", ".", ".."):
            raise UserError(f"{index_path}: tensor '{name}' points outside the folder ({file!r})")
        out[name] = load_npy(folder / file, what=f"trt_infer's dump of tensor '{name}'")
    return out


def bit_identical(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape, dtype and bytes (NaN payloads included): the parity rule, no tolerance."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def parity_hop(name: str, precision: str, taps: Sequence[Tap], python: dict[str, np.ndarray],
               cpp: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per layer the error numbers of ``layer_errors`` (for the report's curve), judged by bit identity."""
    found = [t for t in taps if t.onnx_tensor in python and t.onnx_tensor in cpp]
    with np.errstate(invalid="ignore"):  # inf - inf where both overflowed: NaN, and bit identity decides anyway
        rows, notes = layer_errors(found, python, cpp, float("inf"), other_side="tensorrt")
    rows = [dataclasses.replace(r, divergent=not bit_identical(python[r.other_tensor], cpp[r.other_tensor]))
            for r in rows]
    missing = [t.layer for t in taps if t.onnx_tensor in python and t.onnx_tensor not in cpp]
    if missing:
        notes.append(f"not in trt_infer's outputs: {', '.join(missing)}")
    return {**hop_result(name, rows, notes, 0.0, precision, {"rule": PARITY_RULE}), "threshold_rule": PARITY_RULE}


def python_vs_cpp(trt_infer: Path, serialized: bytes, samples: np.ndarray, taps: Sequence[Tap],
                  python: dict[str, np.ndarray], precision: str) -> dict[str, Any]:
    """Run ``trt_infer --dump-outputs`` on the debug engine the Python side ran; compared, or skipped with
    trt_infer's own last line."""
    name = f"tensorrt_{precision}->tensorrt_cpp_{precision}"
    with tempfile.TemporaryDirectory(prefix="trtverify-localize-") as tmp:
        engine, x, dump = Path(tmp, "debug.engine"), Path(tmp, "samples.npy"), Path(tmp, "dump")
        engine.write_bytes(serialized)
        np.save(x, np.ascontiguousarray(samples, np.float32))
        try:
            run = subprocess.run([str(trt_infer), "--engine", str(engine), "--input", str(x), "--dump-outputs",
                                  str(dump)], capture_output=True, text=True, check=False)
        except OSError as exc:
            return skipped_hop(name, precision, f"{trt_infer} could not be started: {exc}")
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["no message"])[-1]
            return skipped_hop(name, precision, f"{trt_infer} failed (exit {run.returncode}): {last}")
        try:
            cpp = read_dump(dump)
        except (UserError, ValueError, OSError) as exc:
            return skipped_hop(name, precision, f"{trt_infer}'s dump could not be read: {exc}")
    return parity_hop(name, precision, taps, python, cpp)
