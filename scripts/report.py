#!/usr/bin/env python3
"""The final report: tables per model (Markdown and text), summary.json, plots; whatever the verdicts.

  python scripts/report.py --comparison NAME=results/NAME/comparison.json [...] \\
      [--samples NAME=results/NAME/data/test_samples.npy ...] [--pipeline-costs PATH.tsv] [--speed PATH.tsv] \\
      [--float-format .3g] \\
      --markdown results/report.md --text results/report.txt --summary results/summary.json --plots results/plots \\
      [--html results/report.html]

Everything is written (each file atomically), the text report is printed to stdout, and the exit status is 0
whatever the verdicts: failing the run on them is scripts/gate.py's job, a step of its own, so that Snakemake (which
deletes the outputs of a failed job) never deletes the report the failure message points to.
summary.json's schema is in docs/report-schema.md. Plots need matplotlib (Agg backend, no display).
--html writes the same tables (less the pipeline costs: Snakemake's report has the run times) as one self-contained
HTML page, which `snakemake --report` shows in its Comparison category (a Markdown file there can only be
downloaded, not viewed).
"""

from __future__ import annotations

import argparse
import html
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from trtverify import __version__
from trtverify.errors import UserError, require, run_main
from trtverify.io import NpyFile, atomic_path, read_json, write_json
from trtverify.report_gpus import identity_summary, identity_table, scaling_table
from trtverify.sketch import QuantileSketch
from trtverify.tables import (UNITS, check_float_format, engine_table, extra_tables, headline, inconclusives, kind_of,
                              mismatches, model_intro, model_report, model_sections, render, section_text, speed_table,
                              tsv_table, verdict_counts)

from trtverify.report_localize import (attestation_table, divergent_layers_table, first_divergence_line, hop_table,
                                      localization_offer, plot_layer_errors)
from trtverify.schema import parse_with_defaults

SCHEMA_VERSION = 2   # 2: fail_on_mismatch left the summary with the failing (scripts/gate.py)
COMPARISON_SCHEMA = 1
REQUIRED = ("model", "reference", "num_samples", "num_classes", "backends", "pairs", "parity", "per_sample",
            "flipped_samples", "class_counts")
FLIPPED_IMAGES = 16


def parse_named(specs: Sequence[str], flag: str) -> dict[str, str]:
    named, problems = {}, []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            problems.append(f"{flag} takes NAME=PATH, got {spec!r}")
        elif name in named:
            problems.append(f"{flag} names model '{name}' twice")
        else:
            named[name] = path
    if problems:
        raise UserError("; ".join(problems))
    return named


def load_comparisons(paths: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Every comparison.json, checked; all problems in one error."""
    loaded, problems = {}, []
    for model, path in paths.items():
        try:
            data = read_json(path, what=f"comparison of {model}")
        except UserError as exc:
            problems.append(str(exc))
            continue
        if not isinstance(data, dict) or data.get("schema_version") != COMPARISON_SCHEMA:
            version = data.get("schema_version") if isinstance(data, dict) else None
            problems.append(f"{path} has schema_version {version}, this report reads {COMPARISON_SCHEMA}: "
                            "rerun the compare step")
            continue
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            problems.append(f"{path} lacks {', '.join(missing)}: it is not a comparison.json; rerun compare")
            continue
        loaded[model] = data
    if not paths:
        problems.append("no --comparison given: nothing to report")
    if problems:
        raise UserError(f"{len(problems)} problem(s) with the comparisons: " + "; ".join(problems))
    return loaded


def summary(comparisons: Mapping[str, Mapping[str, Any]], plots: Sequence[str]) -> dict[str, Any]:
    """summary.json: the verdicts, overall and per model and pair (docs/report-schema.md); a model or run is
    'fail' on a mismatch, else 'inconclusive' when a pair could prove nothing, else 'pass'."""
    bad, unproven = mismatches(comparisons), inconclusives(comparisons)

    def overall(model: str | None = None) -> str:
        if any(model in (None, m) for m, _, _ in bad):
            return "fail"
        return "inconclusive" if any(model in (None, m) for m, _, _ in unproven) else "pass"

    models = {}
    for model, cmp in comparisons.items():
        pairs = {name: {"a": p["a"], "b": p["b"], "precision": p["precision"], "parity": p["parity"],
                        "verdict": p["verdict"], "reason": p["reason"],
                        "max_abs_diff": p["metrics"]["max_abs_diff"],
                        "top1_agreement": p["metrics"]["top1_agreement"],
                        "accuracy_change": p["metrics"]["accuracy_change"]}
                 for name, p in cmp["pairs"].items()}
        floor = cmp.get("noise_floor")
        models[model] = {
            "verdict": overall(model), "inconclusive": cmp.get("inconclusive"),
            "output_kind": kind_of(cmp), "noise_floor": floor["floor"] if floor else None,
            "reference": cmp["reference"], "num_samples": cmp["num_samples"],
            "accuracy": {name: b["accuracy"] for name, b in cmp["backends"].items()},
            "pairs": pairs,
            "parity": {name: entry["result"] for name, entry in cmp["parity"].items()},
            "flipped_samples": cmp["flipped_samples"]["count"],
        }
    return {"schema_version": SCHEMA_VERSION, "verdict": overall(),
            "verdict_counts": verdict_counts(comparisons),
            "mismatches": [f"{m}: {p}" for m, p, _ in bad],
            "inconclusive": [f"{m}: {p} ({why})" for m, p, why in unproven], "models": models, "plots": list(plots),
            "generator": {"program": "scripts/report.py", "trtverify": __version__}}


# --- plots ------------------------------------------------------------------------------------------------------------
def pyplot() -> Any:
    matplotlib = require("matplotlib", purpose="the report's plots", hint="pip install matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_histogram(plt: Any, model: str, pair: Mapping[str, Any], path: Path, units: str,
                   per_decade: int = 20) -> None:
    """|a - b| per element on a log axis, from the comparison's sketch (its 1 % buckets merged for the eye)."""
    sketch = QuantileSketch.from_dict(pair["abs_diff_histogram"])
    lower, upper, counts = sketch.buckets()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    if counts.sum():
        keep = counts > 0
        bins = np.floor(np.log10(np.sqrt(lower[keep] * upper[keep])) * per_decade)
        uniq, inverse = np.unique(bins, return_inverse=True)
        lo, hi = 10.0 ** (uniq / per_decade), 10.0 ** ((uniq + 1) / per_decade)
        ax.bar(lo, np.bincount(inverse, weights=counts[keep]), width=hi - lo, align="edge", color="tab:blue")
        ax.set_xscale("log")
        atol = pair["tolerance"]["atol"]
        ax.axvline(atol, color="tab:red", linestyle="--", label=f"atol {atol:g}")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "every difference is exactly 0", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"|a - b| ({units})")
    ax.set_ylabel("elements")
    zeros = f"; {sketch.zero_count} exact zeros not drawn" if sketch.zero_count and counts.sum() else ""
    ax.set_title(f"{model}: {pair['a']} vs {pair['b']}: {pair['verdict']}{zeros}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_per_class(plt: Any, model: str, cmp: Mapping[str, Any], path: Path) -> None:
    """Top-1 agreement per true class (columns) for every pair (rows)."""
    names = list(cmp["pairs"])
    matrix = np.array([[np.nan if v is None else v for v in p["per_class_agreement"]] for p in cmp["pairs"].values()])
    rows, cols = matrix.shape
    fig, ax = plt.subplots(figsize=(min(3.5 + 0.45 * cols, 24), min(1.4 + 0.3 * rows, 30)))
    low = min(float(np.nanmin(matrix)) if np.isfinite(matrix).any() else 0.0, 0.99)
    image = ax.imshow(matrix, vmin=low, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_yticks(range(rows), names, fontsize=7)
    ax.set_xticks(range(cols), [str(c) for c in range(cols)], fontsize=7)
    ax.set_xlabel("true class")
    if rows * cols <= 400:
        for (r, c), v in np.ndenumerate(matrix):
            dark = np.isnan(v) or (v - low) / (1.0 - low) < 0.6          # viridis is dark at the low end
            ax.text(c, r, "-" if np.isnan(v) else f"{v:.3g}", ha="center", va="center", fontsize=6,
                    color="w" if dark else "k")
    fig.colorbar(image, ax=ax, label="top-1 agreement")
    ax.set_title(f"{model}: top-1 agreement per class", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def as_image(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An HWC sample as something imshow draws: gray for one channel, RGB for three, scaled to [0, 1] if needed."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3 and x.shape[-1] != 3:
        x = x[..., 0]
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return x, ("gray_r" if x.ndim == 2 else None)


def plot_flipped(plt: Any, model: str, cmp: Mapping[str, Any], samples_path: str, path: Path) -> bool:
    """The first flipped samples as images, each with every backend's top-3; False when there are none."""
    flipped = cmp["flipped_samples"]["samples"][:FLIPPED_IMAGES]
    if not flipped:
        return False
    with NpyFile(samples_path, what=f"test samples of {model}") as f:
        if f.ndim not in (3, 4) or len(f) != cmp["num_samples"]:
            raise UserError(f"test samples {samples_path} have shape {f.shape}; the comparison of {model} has "
                            f"{cmp['num_samples']} samples of (height, width[, channels])")
        images = f.take(s["index"] for s in flipped)
    names = list(cmp["backends"])
    cols = min(4, len(flipped))
    rows = math.ceil(len(flipped) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, rows * (2.4 + 0.13 * len(names))), squeeze=False)
    for ax, sample, image in zip(axes.flat, flipped, images):
        pixels, cmap = as_image(image)
        ax.imshow(pixels, cmap=cmap, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"sample {sample['index']}, label {sample['label']}", fontsize=8)
        lines = [f"{n[:22]:<22} " + " ".join(f"{c}:{p:.2f}" for c, p in zip(pred["classes"], pred["probabilities"]))
                 for n, pred in ((n, sample["predictions"][n]) for n in names)]
        ax.set_xlabel("\n".join(lines), fontsize=5.5, family="monospace")
    for ax in list(axes.flat)[len(flipped):]:
        ax.axis("off")
    fig.suptitle(f"{model}: samples whose top-1 differs between backends (top-3 class:probability)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_plots(comparisons: Mapping[str, Mapping[str, Any]], samples: Mapping[str, str], directory: Path) -> list[str]:
    """Every plot into ``directory``; returns the file names in report order."""
    plt = pyplot()
    names = []
    for model, cmp in comparisons.items():
        for pair in cmp["pairs"].values():
            names.append(f"{model}-abs-diff-{pair['a']}-vs-{pair['b']}.png")
            plot_histogram(plt, model, pair, directory / names[-1], UNITS[kind_of(cmp)])
        if kind_of(cmp) != "other":       # no classes, no per-class agreement
            names.append(f"{model}-per-class-agreement.png")
            plot_per_class(plt, model, cmp, directory / names[-1])
        flipped = directory / f"{model}-flipped.png"
        if model in samples and kind_of(cmp) != "other" and plot_flipped(plt, model, cmp, samples[model], flipped):
            names.append(flipped.name)
    return names


# --- text -------------------------------------------------------------------------------------------------------------
def engine_records(paths: Sequence[str]) -> dict[str, dict[str, Mapping[str, Any]]]:
    """model -> precision -> build record, from results/MODEL/engines/PRECISION.json paths."""
    records: dict[str, dict[str, Mapping[str, Any]]] = {}
    for path in paths:
        records.setdefault(Path(path).parent.parent.name, {})[Path(path).stem] = read_json(
            path, what="engine build info")
    return records


def model_notes(model: str, cmp: Mapping[str, Any], engines: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What stands beside a model's verdicts: the builder's warnings that bear on accuracy, an engine named fp32
    that was not strict FP32, and the command that localizes a pair that is not identical."""
    notes = []
    for precision, info in engines.items():
        att = info.get("attestation") or {}
        if precision == "fp32" and att and not att.get("strict_fp32"):
            notes.append(f"Engine fp32 is not strict FP32 (TF32 allowed: {att.get('tf32_allowed')}, FP16 allowed: "
                         f"{att.get('fp16_allowed')}): its pairs are judged at the precision it allowed.")
        for warning in att.get("accuracy_warnings", []):
            notes.append(f"Engine {precision}: the builder warned: {warning}")
    offer = localization_offer(model, {name: pair["verdict"] for name, pair in cmp["pairs"].items()})
    return notes + ([offer] if offer else [])


def localization_sections(loc: Mapping[str, Any] | None, kind: str) -> list[tuple[str, str]]:
    """A model's localization.json (scripts/localize.py), when it was run: the first divergent layer in the user's
    layer names, each hop, and the first layers past the threshold."""
    if not loc:
        return []
    return [("Localization", first_divergence_line(loc)),
            ("Localization per hop", render(hop_table(loc), kind, None)),
            ("First divergent layers", render(divergent_layers_table(loc), kind, None))]


def attestation_rows(engines: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Any:
    """The attestation table of every model's engines, with the model as first column."""
    rows = []
    for model, records in engines.items():
        rows += [[model, *row] for row in attestation_table(records)[1]]
    return ["model", *attestation_table({})[0]], rows


def build_text(comparisons: Mapping[str, Mapping[str, Any]], extras: Sequence[tuple[str, Any]], kind: str,
               float_format: str, plots: Sequence[str], plots_link: str,
               notes: Mapping[str, Sequence[str]] | None = None,
               localizations: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    title = "trtverify report"
    parts = [f"# {title}\n" if kind == "markdown" else f"{title}\n{'=' * len(title)}\n", headline(comparisons) + "\n"]
    for model, cmp in comparisons.items():
        parts.append(model_report(model, cmp, kind, float_format))
        if (notes or {}).get(model):
            bullet = "- " if kind == "markdown" else "* "
            parts.append(section_text("Notes", "\n".join(bullet + n for n in notes[model]), kind, 3))
        for title, body in localization_sections((localizations or {}).get(model), kind):
            parts.append(section_text(title, body, kind, 3))
    parts += extra_tables(extras, kind)
    if plots:
        if kind == "markdown":
            body = "\n".join(f"![{Path(p).stem}]({plots_link}/{p})" for p in plots)
        else:
            body = "\n".join(f"{plots_link}/{p}" for p in plots)
        parts.append(section_text("Plots", body, kind, 2))
    return "\n".join(parts)


HTML_STYLE = """body { font-family: sans-serif; font-size: 14px; margin: 1em; color: #222; }
table { border-collapse: collapse; margin: 0.3em 0 1em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; white-space: nowrap; }
th { background: #f0f0f0; }"""


def build_html(comparisons: Mapping[str, Mapping[str, Any]], extras: Sequence[tuple[str, Any]],
               float_format: str, notes: Mapping[str, Sequence[str]] | None = None) -> str:
    """The tables of the Markdown report as one HTML page with no external resources (for `snakemake --report`)."""
    from tabulate import tabulate

    def table(tab: Any, fmt: str = float_format, numparse: bool = True) -> str:
        headers, rows = tab
        if not rows:
            return "<p>(none)</p>"
        # tabulate's "html" format escapes every cell
        return tabulate(rows, headers=headers, tablefmt="html", floatfmt=fmt, missingval="-",
                        disable_numparse=not numparse)

    esc = html.escape
    parts = [f"<h1>trtverify report</h1>\n<p>{esc(headline(comparisons))}</p>"]
    for model, cmp in comparisons.items():
        parts.append(f"<h2>Model {esc(model)}</h2>\n<p>{esc(model_intro(cmp))}</p>")
        parts += [f"<h3>{esc(title)}</h3>\n{table(tab, fmt)}"
                  for title, tab, fmt in model_sections(cmp, float_format)]
        if (notes or {}).get(model):
            parts.append("<h3>Notes</h3>\n<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes[model]) + "</ul>")
    parts += [f"<h2>{esc(title)}</h2>\n{table(tab, numparse=False)}" for title, tab in extras]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>trtverify report</title>\n"
            f"<style>\n{HTML_STYLE}\n</style>\n</head>\n<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--comparison", action="append", default=[], metavar="NAME=PATH", help="a model's comparison.json")
    p.add_argument("--samples", action="append", default=[], metavar="NAME=PATH",
                   help="a model's test_samples.npy, to draw its flipped samples (optional)")
    p.add_argument("--pipeline-costs", help="TSV of what each step cost (scripts/pipeline_costs.py), shown as is")
    p.add_argument("--speed", help="TSV benchmark table (scripts/bench_table.py); the report shows its main columns")
    p.add_argument("--engine-info", action="append", default=[], metavar="PATH",
                   help="an engine's build JSON (results/MODEL/engines/PRECISION.json), for the engines table")
    p.add_argument("--localization", action="append", default=[], metavar="NAME=PATH",
                   help="a model's localization.json (scripts/localize.py), when it was run: its own sections and plot")
    p.add_argument("--gpu-identity", action="append", default=[], metavar="NAME=PATH",
                   help="a model's gpu_identity.json (scripts/gpu_identity.py), when several GPUs were checked")
    p.add_argument("--scaling", action="append", default=[], metavar="NAME=PATH",
                   help="a scaling record (scripts/bench_scaling.py) to show, NAME being model/precision")
    p.add_argument("--float-format", help="Python format spec for numbers in the tables")
    p.add_argument("--markdown", required=True, help="report.md to write")
    p.add_argument("--text", required=True, help="report.txt to write (also printed to stdout)")
    p.add_argument("--summary", required=True, help="summary.json to write")
    p.add_argument("--plots", required=True, help="directory of PNG plots to write (replaced as a whole)")
    p.add_argument("--html", help="report.html to write: the tables as one self-contained page (optional)")
    args = parse_with_defaults(p, argv, {"float_format": "report.float_format"})

    float_format = check_float_format(args.float_format)
    comparisons = load_comparisons(parse_named(args.comparison, "--comparison"))
    samples = parse_named(args.samples, "--samples")
    localizations = {model: read_json(path, what="localization")
                     for model, path in parse_named(args.localization, "--localization").items()}
    identities = {model: read_json(path, what="GPU identity check")
                  for model, path in parse_named(args.gpu_identity, "--gpu-identity").items()}
    for flag, given in (("--samples", samples), ("--localization", localizations), ("--gpu-identity", identities)):
        unknown = sorted(set(given) - set(comparisons))
        if unknown:
            raise UserError(f"{flag} for {', '.join(unknown)}, which has no --comparison "
                            f"(models: {', '.join(comparisons)})")
    extras = [("Pipeline costs", tsv_table(args.pipeline_costs, what="Pipeline costs"))] if args.pipeline_costs else []
    if args.speed:
        extras.append(("Speed", speed_table(args.speed)))
    engines = engine_records(args.engine_info)
    notes = {model: model_notes(model, cmp, engines.get(model, {})) for model, cmp in comparisons.items()}
    if args.engine_info:
        extras[:0] = [("TensorRT engines", engine_table(engines)),
                      ("Precision attestation", attestation_rows(engines))]
    if identities:
        extras.insert(0, ("Cross-GPU identity", identity_table(identities)))
    if args.scaling:
        scaling = {name: read_json(path, what="scaling record") for name, path in parse_named(args.scaling,
                                                                                              "--scaling").items()}
        extras.append(("Scaling over GPUs", scaling_table(scaling)))

    with atomic_path(args.plots, directory=True) as tmp_plots:
        names = write_plots(comparisons, samples, tmp_plots)
        for model, loc in localizations.items():
            if plot_layer_errors(pyplot(), model, loc, tmp_plots / f"{model}-layer-errors.png"):
                names.append(f"{model}-layer-errors.png")
        link = os.path.relpath(Path(args.plots).resolve(), Path(args.markdown).resolve().parent)
        markdown = build_text(comparisons, extras, "markdown", float_format, names, link, notes, localizations)
        text = build_text(comparisons, extras, "text", float_format, names, str(args.plots), notes, localizations)
        overview = summary(comparisons, names)
        if identities:  # only where several GPUs were checked: a one-GPU summary keeps its keys
            overview["gpu_identity"] = identity_summary(identities)
        write_json(args.summary, overview)
        pages = [(args.markdown, markdown), (args.text, text)]
        if args.html:   # without the run times: Snakemake's report has its own, and the page stays reproducible
            pages.append((args.html, build_html(comparisons, [e for e in extras if e[0] != "Pipeline costs"],
                                                float_format, notes)))
        for path, content in pages:
            with atomic_path(path) as tmp:
                tmp.write_text(content)
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
