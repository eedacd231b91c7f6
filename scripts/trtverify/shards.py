"""Data-parallel predictions: the test set split into contiguous shards, one per device, merged back into one file.

Shard boundaries fall on multiples of the batch size, so every shard predicts exactly the batches an unsharded run
predicts (the same rows together, the same shapes; only the last batch of the whole set is short, in both). The
merged file is then bit-identical to the unsharded one by construction, whatever the kernels do with the batch
dimension (docs/cluster.md, "Several GPUs").
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import UserError
from .io import COPY_BYTES, NpyReader, NpyWriter, read_json, write_json

# What differs between the shards' records: kept per shard in the merged record, the rest is the backend's own.
SHARD_KEYS = ("shard", "placement", "gpu", "start", "stop", "samples", "seconds", "output_shape")


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), shard I (from 0) of N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard is {text!r}; expected I/N, e.g. 0/4 (shard 0 of 4)") from None
    if not 0 <= index < count:
        raise UserError(f"--shard {text}: the shard index must be in 0..{count - 1}")
    return index, count


def shard_bounds(rows: int, batch: int, index: int, count: int) -> tuple[int, int]:
    """Rows [start, stop) of shard ``index`` of ``count``: whole batches, spread as evenly as they go (a shard can
    be empty when there are fewer batches than shards)."""
    batches = -(-rows // batch)
    first, last = index * batches // count, (index + 1) * batches // count
    return min(first * batch, rows), min(last * batch, rows)


def merge(shards: Sequence[str], infos: Sequence[str], samples: str, output: str, info: str) -> dict[str, Any]:
    """Stream the shards' predictions, in order, into ``output`` (atomic: written only when every row is there)
    and their records into ``info``. Each shard must start where the previous one stopped."""
    records = [read_json(p, what="shard record") for p in infos]
    rows = len(NpyReader(samples, what="test samples"))
    expected = 0
    for path, record in zip(shards, records):
        if not isinstance(record, dict) or not {"start", "stop", "seconds"} <= record.keys():
            raise UserError(f"shard record of {path} names no rows (start, stop): it is not the record of a --shard "
                            "run; rerun the shards")
        if record["start"] != expected:
            raise UserError(f"shard {path} holds rows from {record['start']}, but the shards before it end at "
                            f"{expected}: the shards come from different runs; rerun them")
        expected = record["stop"]
    if expected != rows:
        raise UserError(f"the shards hold {expected} rows, but there are {rows} test samples: rerun the shards")
    with NpyWriter(output, rows) as out:
        for path in shards:
            part = NpyReader(path, what="shard predictions", dtype="float32")
            for _, batch in part.batches(part.rows_per(COPY_BYTES)):
                out.write(batch)
        merged = {k: v for k, v in records[0].items() if k not in SHARD_KEYS}
        merged.update(samples=rows, seconds=round(max(r["seconds"] for r in records), 4),
                      output_shape=[rows, *(out.row_shape or (0,))],
                      shards=[{k: r.get(k) for k in SHARD_KEYS} for r in records])
        write_json(info, merged)  # before the predictions are renamed into place, as predict.py does
    return merged


def first_difference(reference: np.ndarray, other: np.ndarray) -> dict[str, Any] | None:
    """The first element (sample, class) at which two prediction arrays differ in bits, or None if identical."""
    if reference.shape != other.shape:
        return {"shape": list(other.shape), "reference_shape": list(reference.shape)}
    differs = reference.view(np.uint32) != other.view(np.uint32)
    if not differs.any():
        return None
    sample, cls = (int(i) for i in np.argwhere(differs)[0])
    return {"sample": sample, "class": cls, "value": float(other[sample, cls]),
            "reference": float(reference[sample, cls])}


def identity(runs: Sequence[tuple[str, dict[str, Any], np.ndarray]]) -> dict[str, Any]:
    """gpu_identity.json's content from each (precision, device, predictions) run: per precision, every device's
    predictions of the same samples with the same engine against the first device's, bit for bit."""
    checks, references = [], {}
    for precision, device, probs in runs:
        reference = references.setdefault(precision, probs)
        diff = first_difference(reference, probs)
        checks.append({"precision": precision, "device": device, "samples": int(probs.shape[0]),
                       "identical": diff is None, "first_difference": diff})
    return {"devices": checks, "identical": all(c["identical"] for c in checks)}
