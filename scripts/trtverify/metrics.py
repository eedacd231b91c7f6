"""Compare every pair of prediction arrays batch by batch, so memory does not grow with the number of samples.

Inputs are checked first, in a fixed order (names, then shapes, then dtypes, then label values); every problem is
collected and one error lists them all, typed by the first kind that failed (``BackendNameError``, ``ShapeError``,
``DTypeError``, ``LabelError``; all are ``ComparisonInputError``, a ``UserError``). NaN and Inf are counted during the
pass and, unless ``allow_nonfinite``, raise ``NonFiniteError`` with every backend's counts before any number leaves.

Definitions (pair ``a`` vs ``b``, ``a`` the pair's reference; all arithmetic in float64):
  abs diff       ``|a - b|`` per element; max and mean exact, median and p99 from a QuantileSketch (the lower
                 order statistic, within ``relative_accuracy`` = 1% of a value that occurred; sketch.py)
  rel diff       ``|a - b| / max(|a|, relative_floor)``; the floor (1e-6) keeps a probability that is 0 in the
                 reference from dividing by zero, and is far below the atol of any precision, so a tiny absolute
                 difference on a near-zero probability reads as large (<= 1e6 * |a - b|) but never infinite
  cosine         per sample ``a.b / (|a||b|)`` (1 when both rows are zero, 0 when one is), averaged over samples
                 (``cosine_similarity_mean``), its minimum, and over all elements at once (``..._global``)
  outside        elements with ``|a - b| > atol + rtol * |a|``; non-finite elements count as outside unless equal
  top-k          top-1: same arg-max class (ties: the lowest class index); top-5: the same set of the k = min(5, C)
                 highest classes
  top-class change  mean over samples of ``b[r] - a[r]`` at ``r``, the reference's top class
  per-class agreement  for each true class: the share of its samples whose top-1 agrees (None: no samples)
Statistics of differences cover the elements where both values are finite.
"""

from __future__ import annotations

import collections
import itertools
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .errors import UserError
from .lanes import Lanes, PendingBatch, Task
from .outputs import OutputProfile, ProfileSums, profile_reference
from .pairstats import TOP_K, BackendStats, Batch, FlippedSamples, PairStats, per_sample_rows
from .results import ComparisonResult, PairResult
from .tolerance import CLASSIFICATION, TolerancePolicy, inconclusive_reason, parity_pairs
from .validation import LabelError, NonFiniteError, label_problems, validate

RELATIVE_FLOOR = 1e-6
BATCHES_AHEAD = 2   # batches read and scanned ahead of the one the main thread finishes: memory is a few batches
PROBE_ROWS = 256    # the reference's first rows, that tell whether compare takes it as probabilities (profile_before)


def pair_order(names: Sequence[str], reference: str) -> list[tuple[str, str]]:
    """Every pair once: the reference against each backend first, then the others in the given order."""
    ordered = [reference] + [n for n in names if n != reference]
    return list(itertools.combinations(ordered, 2))


def nonfinite_message(stats: Mapping[str, BackendStats]) -> list[str]:
    problems = []
    for name, s in stats.items():
        where = f", first at sample {s.first_nonfinite[0]} class {s.first_nonfinite[1]}" if s.first_nonfinite else ""
        problems.append(f"{name}: {s.nan} NaN, {s.inf} Inf{where}")
    return ["predictions contain NaN or Inf, so the backend that wrote them produced invalid numbers"] + problems


def compare(predictions: Mapping[str, Any] | Sequence[tuple[str, Any]], labels: Any, *, reference: str = "savedmodel",
            policy: TolerancePolicy | None = None, model: str = "", samples: Any | None = None,
            batch_size: int, max_flipped: int, per_sample_limit: int, output_kind: str,
            relative_floor: float = RELATIVE_FLOOR, relative_accuracy: float = 0.01, allow_nonfinite: bool = False,
            on_batch: Callable[[Batch], None] | None = None, noise_floor: Mapping[str, Any] | None = None,
            threads: int = 1) -> ComparisonResult:
    """Compare every pair of backends over all samples, ``batch_size`` rows at a time.

    ``batch_size``, ``max_flipped``, ``per_sample_limit`` and ``output_kind`` have no default here: they are the
    config's compare.batch_size, compare.max_flipped, compare.per_sample_rows and models.<name>.output_kind, whose
    one default is config/schema.yaml's (tests/test_schema_defaults.py).

    ``predictions`` maps names to (N, C) arrays or anything sliceable by rows with ``shape``/``dtype`` (an NpyFile);
    ``on_batch`` sees every batch (the per-sample CSV is written from it). ``noise_floor``: the reference's
    self-disagreement as convert_onnx.py measured it (its ``floor``, output units, and for logits
    ``softmax_floor``); without it the floor is 0 and the fp32 bound its minimum. ``output_kind``: auto or a kind
    of tolerance.KINDS. ``threads``: that many lanes (lanes.py) work on the backends' scans, the pairs and (logits)
    the softmax checks of the batches in flight at once (the compiled passes release the GIL), each pair on one lane
    in sample order and the softmax checks' counts integers, so every figure is the same whatever the number. Raises a
    ComparisonInputError subclass listing every problem before computing anything, and
    NonFiniteError after the pass unless ``allow_nonfinite``.
    """
    items = list(predictions.items()) if isinstance(predictions, Mapping) else list(predictions)
    items = [(name, a if hasattr(a, "shape") else np.asarray(a)) for name, a in items]
    labels = labels if hasattr(labels, "shape") else np.asarray(labels)
    if batch_size < 1 or max_flipped < 0 or per_sample_limit < 0:
        raise UserError(f"batch size must be >= 1 and limits >= 0 (got {batch_size}, {max_flipped}, "
                        f"{per_sample_limit})")
    validate(items, labels, reference=reference, samples=samples, batch_size=batch_size, check_labels=False)
    sources = dict(items)
    names = [reference] + [n for n in sources if n != reference]
    n, c = labels.shape[0], sources[reference].shape[1]
    profile = profile_before(sources[reference], output_kind, batch_size, threads)
    sums = ProfileSums(c)   # filled by the pass where the profile is not made before it
    kind, scale = ("probabilities", 1.0) if profile is None else (profile.kind, profile.scale)
    if kind in CLASSIFICATION:
        problems = label_problems(labels, c, batch_size)
        if problems:
            raise LabelError(problems)
    policy = policy or TolerancePolicy()
    options = {"max_flipped": max_flipped, "relative_floor": relative_floor, "relative_accuracy": relative_accuracy}
    pairs = make_pairs(names, reference, policy, kind, scale, noise_floor, c, **options)
    backends = {name: BackendStats(name) for name in names}
    flipped, rows, class_counts = FlippedSamples(reference, max_flipped), [], np.zeros(c, dtype=np.int64)

    def finish(batch: Batch) -> None:
        """What is added on the main thread, in sample order: per backend, flips, per-sample rows, on_batch. None of
        it depends on the profile beyond whether the outputs are classes, which no later look at it changes (both
        kinds of more than one column are)."""
        nonlocal class_counts
        class_counts += np.bincount(batch.labels, minlength=c) if kind in CLASSIFICATION else 0
        for stats in [*backends.values()] + ([flipped] if kind in CLASSIFICATION else []):
            stats.update(batch)
        if batch.start < per_sample_limit:
            rows.extend(per_sample_rows(batch, per_sample_limit))
        if on_batch is not None:
            on_batch(batch)

    stream(sources, names, labels, pairs, batch_size=batch_size, threads=threads, finish=finish,
           sums=sums if profile is None else None)
    if not allow_nonfinite and any(s.nan or s.inf for s in backends.values()):
        raise NonFiniteError(nonfinite_message(backends))
    if profile is None:
        profile = sums.profile(output_kind, n)
        if profile.kind != kind:    # the first rows were probabilities and others are not: the pairs again, as logits
            pairs = make_pairs(names, reference, policy, profile.kind, profile.scale, noise_floor, c, **options)
            stream(sources, names, labels, pairs, batch_size=batch_size, threads=threads, finish=lambda batch: None)
    floor = float((noise_floor or {}).get("floor") or 0.0)
    why = inconclusive_reason(kind=profile.kind, spread=profile.spread, predicted_classes=profile.predicted_classes,
                              samples=n, floor_normalised=floor / profile.scale)
    correct = {name: s.correct if profile.kind in CLASSIFICATION else None for name, s in backends.items()}
    results = {name: p.result(correct[p.a], correct[p.b], why) for name, p in pairs.items()}
    return ComparisonResult(
        model=model, reference=reference, num_samples=n, num_classes=c,
        settings={"batch_size": batch_size, "relative_floor": relative_floor, "relative_accuracy": relative_accuracy,
                  "top_k": min(TOP_K, c), "max_flipped": max_flipped, "per_sample_rows": per_sample_limit},
        backends={name: s.to_dict(n, backends[reference].correct, str(sources[name].dtype), profile.kind)
                  for name, s in backends.items()},
        pairs=results,
        parity={name: parity_entry(r) for name, r in results.items() if r.parity},
        per_sample=rows, flipped_samples=flipped.to_dict(), class_counts=[int(k) for k in class_counts],
        output=profile.to_dict(), noise_floor=dict(noise_floor) if noise_floor else None, inconclusive=why)


def profile_before(source: Any, output_kind: str, batch_size: int, threads: int) -> OutputProfile | None:
    """The reference's profile, made before the pass, or None where the pass makes it as it goes.

    The tolerances of probabilities do not depend on the profile (scale 1), so where the kind is probabilities
    whatever the rows hold (output_kind probabilities) or likely (auto, and the first PROBE_ROWS rows are
    probabilities), the pass adds the profile's sums as it reads the reference, instead of a read of the
    reference of its own before (a twentieth of compare's time on 10,000 ResNet50 predictions, docs/benchmarks.md).
    Should the other rows show logits, compare passes the pairs again at the tolerances of logits."""
    if output_kind == "probabilities":
        return None
    if output_kind == "auto" and source.shape[0] > 0:
        probe = ProfileSums(source.shape[1])
        probe.add(ProfileSums.of_batch(source[0:PROBE_ROWS]))
        if probe.detected()[0] == "probabilities":
            return None
    return profile_reference(source, override=output_kind, batch_size=batch_size, threads=threads)


def stream(sources: Mapping[str, Any], names: Sequence[str], labels: Any, pairs: Mapping[str, PairStats], *,
           batch_size: int, threads: int, finish: Callable[[Batch], None], sums: ProfileSums | None = None) -> None:
    """One pass over every batch: the backends' scans, each pair's statistics and (logits) its softmax check on the
    lanes, ``finish`` of each batch on this thread in sample order, and where ``sums`` is given the reference's
    (names[0]) profile sums, added in batch order."""
    n, c = labels.shape[0], sources[names[0]].shape[1]
    # logits are also judged as the probabilities they stand for: each pair's softmax check, by row ranges
    judged = {p: p.softmax_tolerance for p in pairs.values() if p.softmax_tolerance is not None}
    ends = [(names.index(p.a), names.index(p.b)) for p in judged]
    bounds = [(t.rtol, t.atol) for t in judged.values()]

    with Lanes(threads) as lanes:
        window: collections.deque[tuple[PendingBatch, list[Task], list[Task], Task | None]] = collections.deque()

        def drain() -> None:
            pending, work, checks, profiled = window.popleft()
            lanes.finish(pending, work + checks, finish)
            for task in checks:
                for pair, count in zip(judged, task.result()):
                    pair.softmax_outside += int(count)
            if sums is not None and profiled is not None:
                sums.add(profiled.result())

        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)   # read here while the lanes work on the batches before
            raw = {k: sources[k][start:stop] for k in names}
            pending = lanes.batch(start, labels[start:stop], raw, min(TOP_K, c))
            profiled = lanes.spread(ProfileSums.of_batch, raw[names[0]]) if sums is not None else None
            checks = lanes.softmax_checks(list(raw.values()), ends, bounds) if judged else []
            window.append((pending, [lanes.submit_for(name, update_pair, pair, pending)
                                     for name, pair in pairs.items()], checks, profiled))
            if len(window) > BATCHES_AHEAD:
                drain()
        while window:
            drain()


def update_pair(pair: PairStats, pending: PendingBatch) -> None:
    pair.update(pending.result())


def make_pairs(names: Sequence[str], reference: str, policy: TolerancePolicy, kind: str, scale: float,
               noise_floor: Mapping[str, Any] | None, num_classes: int, **options: Any) -> dict[str, PairStats]:
    """Every pair's statistics, with its tolerance from the one policy (tolerance.py) at the output's scale."""
    floor = float((noise_floor or {}).get("floor") or 0.0)
    soft_floor = float((noise_floor or {}).get("softmax_floor") or 0.0)
    parity = set(parity_pairs(names))
    pairs = {}
    for a, b in pair_order(names, reference):
        soft = policy.for_pair(a, b, floor=soft_floor, overrides=("max_outside_share", "min_top1_agreement",
                                                                   "max_accuracy_change")) \
            if kind == "logits" else None
        # A flip is a tie when the reference's top-2 margin is within what its own noise can move: each of the two
        # values may move by the floor.
        pairs[f"{a} vs {b}"] = PairStats(a, b, policy.for_pair(a, b, scale=scale, floor=floor),
                                         num_classes, parity=(a, b) in parity, kind=kind,
                                         softmax_tolerance=soft, tie_margin=2 * floor, **options)
    return pairs


def parity_entry(pair: PairResult) -> dict[str, Any]:
    """'identical', or where the two first differ and how many elements do."""
    if pair.verdict == "identical":
        return {"a": pair.a, "b": pair.b, "result": "identical", "differing_elements": 0, "first_difference": None}
    return {"a": pair.a, "b": pair.b, "result": "differs", "differing_elements": pair.metrics["differing_elements"],
            "first_difference": pair.first_difference}
