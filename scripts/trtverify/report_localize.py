"""The report's localization and precision-attestation sections, for report.py to include.

``localization_tables`` reads results/{model}/localization.json (scripts/localize.py), ``attestation_table`` the
engines/{precision}.json build records (engine.attest); ``plot_layer_errors`` draws the per-layer error curves.
Tables are (headers, rows) for tables.render, so Markdown and text agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .tables import Table


def localization_offer(model: str, verdicts: Mapping[str, str]) -> str | None:
    """For a model with a `drift` or `mismatch` pair (pair name -> verdict): the command that localizes it."""
    off = sorted(pair for pair, verdict in verdicts.items() if verdict in ("drift", "mismatch"))
    if not off:
        return None
    return (f"{', '.join(off)} {'is' if len(off) == 1 else 'are'} not identical: `snakemake "
            f"results/{model}/localization.json` finds the first layer where they part (docs/localization.md).")


def first_divergence_line(loc: Mapping[str, Any]) -> str:
    """One sentence in the user's layer names: where it diverged first, or that no layer did."""
    first = loc.get("first_divergence")
    compared = [h["hop"] for h in loc["hops"] if h["status"] == "compared"]
    if first:
        fused = f" (fused with {', '.join(first['fused'])} in the converted model)" if first["fused"] else ""
        return f"First divergent layer: {first['layer']}{fused}, in hop {first['hop']}."
    if not compared:
        return "No hop could be compared here; see the reasons below."
    return f"No divergent layer in {', '.join(compared)} ({loc['layers_matched']} layers matched)."


def hop_table(loc: Mapping[str, Any]) -> Table:
    headers = ["hop", "status", "layers compared", "first divergent layer", "threshold", "largest relative error",
               "reason, notes"]
    rows = []
    for hop in loc["hops"]:
        errors = [r["relative_error"] for r in hop["layers"]]
        largest = None if not errors or None in errors else max(errors)  # None: a non-finite layer
        rows.append([hop["hop"], hop["status"], len(hop["layers"]), hop["first_divergent_layer"] or "-",
                     hop.get("threshold"), largest if errors else None,
                     "; ".join(x for x in [hop.get("reason", ""), *hop.get("notes", [])] if x)])
    return headers, rows


def divergent_layers_table(loc: Mapping[str, Any], limit: int = 10) -> Table:
    """The first layers past the threshold in each hop, where a reader starts looking."""
    headers = ["hop", "layer", "fused with", "shape", "max |a - b|", "relative error"]
    rows = []
    for hop in loc["hops"]:
        for row in [r for r in hop["layers"] if r["divergent"]][:limit]:
            rows.append([hop["hop"], row["layer"], ", ".join(row["fused"]) or "-", "x".join(map(str, row["shape"])),
                         row["max_abs_error"], row["relative_error"]])
    return headers, rows


def attestation_table(engines: Mapping[str, Mapping[str, Any]]) -> Table:
    """Per engine (precision -> its build JSON): what it was allowed to compute in and what the inspector saw."""
    headers = ["engine", "strict FP32", "TF32 allowed", "FP16 allowed", "layer output types",
               "kernels by math (from their names)", "inspector", "accuracy warnings"]
    rows = []
    for precision, info in engines.items():
        att = info.get("attestation")
        if att is None:
            rows.append([precision, "unknown", "-", "-", "-", "-", "built before attestation was recorded", "-"])
            continue
        types = ", ".join(f"{k} {v}" for k, v in sorted(att["output_precisions"].items())) or "-"
        kernels = ", ".join(f"{k} {v}" for k, v in sorted(att.get("kernel_precisions", {}).items())) or "-"
        rows.append([precision, "yes" if att["strict_fp32"] else "no", "yes" if att["tf32_allowed"] else "no",
                     "yes" if att["fp16_allowed"] else "no", types, kernels, att["inspector"],
                     "; ".join(att["accuracy_warnings"]) or "none"])
    return headers, rows


def plot_layer_errors(plt: Any, model: str, loc: Mapping[str, Any], path: Path) -> bool:
    """Relative error per layer for every compared hop (log scale), each with its threshold; False if none."""
    hops = [h for h in loc["hops"] if h["status"] == "compared" and h["layers"]]
    if not hops:
        return False
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for hop in hops:
        line = ax.plot([r["relative_error"] if r["relative_error"] is not None else float("nan")
                        for r in hop["layers"]], label=hop["hop"], linewidth=1)[0]
        ax.axhline(hop["threshold"], color=line.get_color(), linestyle="--", linewidth=0.8)
        first = hop["first_divergent_layer"]
        if first:
            at = [r["layer"] for r in hop["layers"]].index(first)
            ax.annotate(first, (at, hop["layers"][at]["relative_error"] or hop["threshold"]), fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("layer (in the SavedModel's order)")
    ax.set_ylabel("RMS error / layer std")
    ax.set_title(f"{model}: per-layer error (dashed: threshold)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
