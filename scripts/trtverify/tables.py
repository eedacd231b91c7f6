"""The report's tables, from comparison.json data: each builder returns (headers, rows); ``render`` formats them.

The same rows become Markdown (``github`` format) in report.md and plain text (``simple``) in report.txt and on
stdout, so the two never disagree. Floats go through ``float_format`` (a Python format spec such as ``.3g``);
missing numbers print as ``-``. Builders take the parsed comparison.json of one model (docs/report-schema.md).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping, Sequence

from .backends.registry import label
from .errors import UserError

Table = tuple[list[str], list[list[Any]]]
FORMATS = {"markdown": "github", "text": "simple"}
FLIPPED_ROWS = 20
PARITY_FORMAT = ".9g"   # parity rows must show a last-bit difference in full


def check_float_format(spec: str) -> str:
    """A format spec usable as ``format(x, spec)``, or a UserError saying what is expected."""
    try:
        format(1.5, spec)
    except (ValueError, TypeError):
        raise UserError(f"float format '{spec}' is not a Python format spec for numbers; try '.3g' or '.4f'") \
            from None
    return spec


def render(table: Table, kind: str, float_format: str | None) -> str:
    """A table as Markdown (kind 'markdown') or plain text ('text'); ``float_format`` None prints every cell as
    given (no number parsing: the cells are text already, or must print in full)."""
    from tabulate import tabulate

    headers, rows = table
    if not rows:
        return "(none)"
    if kind == "markdown":                  # a bare '|' in a cell would end it
        headers = [h.replace("|", "\\|") for h in headers]
        rows = [[c.replace("|", "\\|") if isinstance(c, str) else c for c in row] for row in rows]
    verbatim = float_format is None        # tabulate then formats no float, so its floatfmt goes unused
    return tabulate(rows, headers=headers, tablefmt=FORMATS[kind], floatfmt=float_format or "g", missingval="-",
                    disable_numparse=verbatim)


def _num(value: Any, float_format: str) -> str:
    return "-" if value is None else format(value, float_format)


UNITS = {"probabilities": "probabilities", "logits": "logits", "other": "output units"}


def kind_of(cmp: Mapping[str, Any]) -> str:
    """The output kind a comparison judged (comparisons written before kinds existed held probabilities)."""
    return str((cmp.get("output") or {}).get("kind", "probabilities"))


def _interval(ci: Any, float_format: str) -> str | None:
    return None if not ci else f"[{_num(ci[0], float_format)}, {_num(ci[1], float_format)}]"


def accuracy_table(cmp: Mapping[str, Any], float_format: str) -> Table:
    headers = ["backend", "precision", "accuracy", "95% CI", "vs reference", "correct", "mean top-1 prob", "NaN",
               "Inf"]
    n = cmp["num_samples"]
    rows = [[name, b["precision"], b["accuracy"], _interval(b.get("accuracy_ci95"), float_format),
             b["accuracy_change"] if name != cmp["reference"] else None,
             f"{b['correct']}/{n}", b["mean_top1_confidence"], b["nan_count"], b["inf_count"]]
            for name, b in cmp["backends"].items()]
    return headers, rows


def floor_table(cmp: Mapping[str, Any]) -> Table:
    """The reference's noise floor: each self-check, and the floor the fp32 bound is derived from."""
    floor, out = cmp.get("noise_floor"), cmp.get("output") or {}
    rows: list[list[Any]] = []
    if floor:
        rows = [[name, c["max_abs_diff"], c["mean_abs_diff"], c["max_abs_diff"] / floor["scale"]]
                for name, c in floor["checks"].items()]
        rows.append(["floor (the largest)", floor["floor"], None, floor["floor_normalised"]])
    where = f"{floor['samples']} most sensitive" if floor and "selection" in floor else \
        f"first {floor['samples'] if floor else 0}"  # floors measured before 2026-12-04 ran on the first samples
    return [f"self-check ({where} samples)", f"max |d| ({UNITS[kind_of(cmp)]})",
            "mean |d|", f"max |d| / scale {(floor or out).get('scale', 1.0):.3g}"], rows


def difference_table(cmp: Mapping[str, Any]) -> Table:
    headers = ["pair", "max |d|", "mean |d|", "median |d|", "p99 |d|", "max rel", "mean rel", "cos mean",
               "cos min"]
    rows = [[name, m["max_abs_diff"], m["mean_abs_diff"], m["median_abs_diff"], m["p99_abs_diff"],
             m["max_rel_diff"], m["mean_rel_diff"], m["cosine_similarity_mean"], m["cosine_similarity_min"]]
            for name, pair in cmp["pairs"].items() for m in [pair["metrics"]]]
    return headers, rows


def verdict_table(cmp: Mapping[str, Any], float_format: str) -> Table:
    """One row per pair; the classification columns only where the output is a classification."""
    classify = kind_of(cmp) != "other"
    headers = ["pair", "precision", "verdict", "outside tolerance"]
    if classify:
        headers += ["top-1 agree", "95% CI", "top-5 agree", "top-1 flips (ties)", "accuracy change", "95% CI"]
    if kind_of(cmp) == "probabilities":
        headers.append("top-class prob change")
    headers.append("tolerance |d| <=")
    rows = []
    for name, pair in cmp["pairs"].items():
        m, t = pair["metrics"], pair["tolerance"]
        source = t["source"] + (f": {', '.join(t['overridden'])}" if t["overridden"] else "")
        row = [name, pair["precision"], pair["verdict"] + (" (parity)" if pair["parity"] else ""),
               f"{m['outside_tolerance_count']} ({_num(m['outside_tolerance_share'], float_format)})"
               + (f"; {m['softmax_outside_tolerance_count']} after softmax"
                  if m.get("softmax_outside_tolerance_count") is not None else "")]
        if classify:
            flips = m["top1_flips"]
            row += [m["top1_agreement"], _interval(m.get("top1_agreement_ci95"), float_format), m["top5_agreement"],
                    None if flips is None else f"{flips} ({m.get('ties') or 0})", m["accuracy_change"],
                    _interval(m.get("accuracy_change_ci95"), float_format)]
        if kind_of(cmp) == "probabilities":
            row.append(m["mean_top_class_prob_change"])
        rows.append(row + [f"{t['atol']:.3g} + {t['rtol']:g}|ref| ({source})"])
    return headers, rows


def reason_table(cmp: Mapping[str, Any]) -> Table:
    """Why each pair beyond its tolerance got its verdict (drift or mismatch)."""
    rows = [[name, pair["verdict"], pair["reason"]] for name, pair in cmp["pairs"].items()
            if pair["verdict"] in ("drift", "mismatch", "inconclusive")]
    return ["pair", "verdict", "why"], rows


def parity_table(cmp: Mapping[str, Any], float_format: str = PARITY_FORMAT) -> Table:
    headers = ["pair", "result", "differing elements", "first difference"]
    rows = []
    for name, entry in cmp["parity"].items():
        first = entry["first_difference"]
        where = "-" if first is None else (
            f"sample {first['sample']} class {first['class']}: {entry['a']} {_num(first[entry['a']], float_format)}"
            f" vs {entry['b']} {_num(first[entry['b']], float_format)}")
        rows.append([name, entry["result"], entry["differing_elements"], where])
    return headers, rows


def per_sample_table(cmp: Mapping[str, Any], float_format: str) -> Table:
    """The first samples as in the original guide: true label, then each backend's class (confidence)."""
    names = list(cmp["backends"])
    rows = [[row["index"], row["label"]] + [f"{p['class']} ({_num(p['confidence'], float_format)})"
                                            for p in (row["predictions"][n] for n in names)]
            for row in cmp["per_sample"]]
    return ["sample", "label"] + names, rows


def flipped_table(cmp: Mapping[str, Any], float_format: str, limit: int = FLIPPED_ROWS) -> Table:
    """Samples whose top-1 differs between backends: each backend's top-3 classes with probabilities."""
    names = list(cmp["backends"])
    rows = []
    for sample in cmp["flipped_samples"]["samples"][:limit]:
        cells = [" ".join(f"{c}:{_num(p, float_format)}" for c, p in zip(pred["classes"], pred["probabilities"]))
                 for pred in (sample["predictions"][n] for n in names)]
        rows.append([sample["index"], sample["label"]] + cells)
    return ["sample", "label"] + names, rows


def per_class_table(cmp: Mapping[str, Any]) -> Table:
    """Top-1 agreement per true class, for the pairs with the reference."""
    pairs = {name: p for name, p in cmp["pairs"].items() if cmp["reference"] in (p["a"], p["b"])}
    rows = [[cls, count] + [p["per_class_agreement"][cls] for p in pairs.values()]
            for cls, count in enumerate(cmp["class_counts"])]
    return ["class", "samples"] + list(pairs), rows


def tsv_table(path: str | Path, *, what: str) -> Table:
    """A tab-separated table with a header row, rendered as it is."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} table {p} does not exist; run the step that writes it or drop the option")
    try:
        with open(p, newline="") as fh:
            records = [r for r in csv.reader(fh, delimiter="\t") if r]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{what} table {p} could not be read as TSV ({exc})") from None
    if not records:
        raise UserError(f"{what} table {p} is empty; expected a header row")
    return records[0], records[1:]


# The benchmark columns shown where people read them (bench_table's summary on stdout and the report's Speed
# section; results/benchmarks.tsv keeps all of them), each with its number format: which measurement, the median and
# tail latency, throughput, the speed-up over the baseline, GPU time apart from copies, memory, and where it ran.
SPEED_COLUMNS = {"model": "", "backend": "", "precision": "", "batch": "", "cuda_graph": "", "p50_ms": ".4g",
                 "p99_ms": ".4g", "throughput_samples_per_s": ".0f", "speedup_p50": ".3g", "gpu_compute_p50_ms": ".4g",
                 "peak_host_rss_mib": ".0f", "gpu_memory_mib": ".0f", "device": ""}


def speed_view(header: Sequence[str], rows: Sequence[Sequence[Any]], where: str) -> Table:
    """SPEED_COLUMNS of a benchmark table (header and rows as bench_table writes them, numbers or their text), each
    number in its column's format; a missing value stays empty."""
    keep = [c for c in SPEED_COLUMNS if c in header]
    index = [header.index(c) for c in keep]

    def cell(column: str, value: Any) -> str:
        if value is None or value == "":
            return ""
        spec = SPEED_COLUMNS[column]
        if not spec:
            return str(value)
        try:
            return format(float(value), spec)
        except ValueError:
            raise UserError(f"{where}: column {column} holds '{value}', not a number") from None

    return keep, [[cell(c, row[i] if i < len(row) else "") for c, i in zip(keep, index)] for row in rows]


def speed_table(path: str | Path) -> Table:
    """The report's view of the benchmark TSV (scripts/bench_table.py)."""
    header, rows = tsv_table(path, what="Speed")
    missing = [c for c in ("model", "backend", "batch", "p50_ms") if c not in header]
    if missing:
        raise UserError(f"Speed table {path} lacks the column(s) {', '.join(missing)}: it is not a benchmark table "
                        "written by scripts/bench_table.py")
    return speed_view(header, rows, f"Speed table {path}")


def model_sections(cmp: Mapping[str, Any], float_format: str) -> list[tuple[str, Table, str]]:
    """(title, table, float format) for every table of one model, in report order."""
    flipped = cmp["flipped_samples"]
    shown = min(len(flipped["samples"]), FLIPPED_ROWS)
    kind = kind_of(cmp)
    sections = [("Accuracy per format", accuracy_table(cmp, float_format), float_format)] if kind != "other" else []
    if cmp.get("noise_floor"):
        sections.append(("Noise floor of the reference (the fp32 bound is derived from it)", floor_table(cmp),
                         float_format))
    sections += [
        (f"Differences per pair ({UNITS[kind]})", difference_table(cmp), float_format),
        ("Verdicts per pair", verdict_table(cmp, float_format), float_format),
    ]
    if reason_table(cmp)[1]:
        sections.append(("Pairs beyond tolerance or inconclusive: why", reason_table(cmp), float_format))
    if cmp["parity"]:
        sections.append(("Python vs C++ parity (same engine: must be identical)", parity_table(cmp), PARITY_FORMAT))
    if kind == "other":            # no classes: the per-sample, per-class and flip views would mean nothing
        return sections
    sections += [
        (f"Per-sample predictions (first {len(cmp['per_sample'])} of {cmp['num_samples']}: class (probability))",
         per_sample_table(cmp, float_format), float_format),
        ("Top-1 agreement per true class", per_class_table(cmp), float_format),
        (f"Flipped samples ({shown} shown of {flipped['count']}: top-3 class:probability)",
         flipped_table(cmp, float_format), float_format),
    ]
    return sections


def section_text(title: str, body: str, kind: str, level: int) -> str:
    if kind == "markdown":
        return f"{'#' * level} {title}\n\n{body}\n"
    underline = "=" if level <= 2 else "-"
    return f"{title}\n{underline * len(title)}\n{body}\n"


def model_intro(cmp: Mapping[str, Any]) -> str:
    """What the model outputs, how that was decided, and whether the comparison could prove anything."""
    out = cmp.get("output") or {}
    kind = kind_of(cmp)
    what = f"{cmp['num_classes']} classes" if kind != "other" else f"{cmp['num_classes']} output value(s)"
    text = (f"{cmp['num_samples']} test samples, {what} ({kind}: {out.get('how', 'assumed')}), reference backend "
            f"{cmp['reference']}; verdicts per docs/tolerances.md. Backends: "
            + "; ".join(f"{name} = {label(name)}" for name in cmp["backends"]) + ".")
    if cmp.get("inconclusive"):
        text += f" INCONCLUSIVE: {cmp['inconclusive']}."
    if cmp.get("conversion_aids"):
        text += (" The ONNX model needed trtverify's conversion aids, which tf2onnx's own command line lacks ("
                 + "; ".join(cmp["conversion_aids"]) + "): convert with the pipeline, or with them "
                 "(scripts/trtverify/tf2onnx_aids.py), to deploy the model verified here.")
    return text


def model_report(name: str, cmp: Mapping[str, Any], kind: str, float_format: str) -> str:
    intro = model_intro(cmp)
    parts = [section_text(f"Model {name}", intro, kind, 2)]
    for title, table, fmt in model_sections(cmp, float_format):
        parts.append(section_text(title, render(table, kind, fmt), kind, 3))
    return "\n".join(parts)


def verdict_counts(comparisons: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    counts = {"identical": 0, "consistent": 0, "drift": 0, "mismatch": 0, "inconclusive": 0}
    for cmp in comparisons.values():
        for pair in cmp["pairs"].values():
            counts[pair["verdict"]] += 1
    return counts


def mismatches(comparisons: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(model, pair, reason) of every mismatched pair."""
    return [(model, name, pair["reason"]) for model, cmp in comparisons.items()
            for name, pair in cmp["pairs"].items() if pair["verdict"] == "mismatch"]


def inconclusives(comparisons: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(model, pair, reason) of every pair that could prove nothing."""
    return [(model, name, pair["reason"]) for model, cmp in comparisons.items()
            for name, pair in cmp["pairs"].items() if pair["verdict"] == "inconclusive"]


def headline(comparisons: Mapping[str, Mapping[str, Any]]) -> str:
    counts = verdict_counts(comparisons)
    overall = "FAIL" if counts["mismatch"] else "INCONCLUSIVE" if counts["inconclusive"] else "PASS"
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    return f"Overall: {overall}. {len(comparisons)} model(s), {sum(counts.values())} pairs: {summary}."


def extra_tables(extras: Sequence[tuple[str, Table]], kind: str) -> list[str]:
    return [section_text(title, render(table, kind, None), kind, 2) for title, table in extras]


def engine_table(engines: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Table:
    """One row per engine build (model -> precision -> the build_engine step's JSON): who built it, how, and how
    long it took."""
    header = ["model", "precision", "builder", "version", "batch min/opt/max", "tf32", "fp16", "tactic sources",
              "build s", "bytes"]
    rows = []
    for model, records in engines.items():
        for info in records.values():
            profile = info.get("profile", {})
            batches = "/".join(str(profile.get(k, ["?"])[0]) for k in ("min", "opt", "max"))
            rows.append([model, info.get("precision"), info.get("builder"), info.get("tensorrt_version"), batches,
                         info.get("tf32"), info.get("fp16"), info.get("tactic_sources"), info.get("build_seconds"),
                         info.get("engine_bytes")])
    return header, rows
