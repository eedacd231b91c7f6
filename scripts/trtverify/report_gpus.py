"""Several GPUs in the report, the summary and the gate: the cross-GPU identity check (results/{model}/
gpu_identity.json, scripts/gpu_identity.py), a table of every device's verdict and the devices that differ, which
fail the gate; and the scaling benchmark (results/{model}/scaling_{precision}.json, scripts/bench_scaling.py).
"""

from __future__ import annotations

from typing import Any, Mapping

Table = tuple[list[str], list[list[Any]]]


def verdict(check: Mapping[str, Any]) -> str:
    """`identical`, or the first differing element: sample, class, this device's value and the first device's."""
    if check["identical"]:
        return "identical"
    diff = check["first_difference"]
    if "sample" not in diff:
        return f"differs: shape {diff['shape']}, first device {diff['reference_shape']}"
    return f"differs first at sample {diff['sample']}, class {diff['class']}: {diff['value']!r} " \
           f"(first device {diff['reference']!r})"


def device_name(device: Mapping[str, Any]) -> str:
    return f"{device['index']}: {device['name']}" + (f" ({device['uuid']})" if device.get("uuid") else "")


def identity_table(results: Mapping[str, Mapping[str, Any]]) -> Table:
    """One row per model, precision and device."""
    rows = [[model, check["precision"], device_name(check["device"]), result["samples"], verdict(check)]
            for model, result in results.items() for check in result["devices"]]
    return ["model", "precision", "device", "samples", "result"], rows


def identity_summary(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """summary.json's `gpu_identity`: per model, whether every device agreed, and what differed where."""
    return {model: {"identical": result["identical"], "devices": len({c["device"]["index"] for c in result["devices"]}),
                    "differing": [f"{c['precision']} on device {device_name(c['device'])}: {verdict(c)}"
                                  for c in result["devices"] if not c["identical"]]}
            for model, result in results.items()}


def identity_failures(summary: Mapping[str, Any]) -> list[str]:
    """The gate's reasons to fail on the identity check: every device that differs from the first, per model."""
    entries = summary.get("gpu_identity") or {}
    return [f"{model}: {d}" for model, entry in entries.items() for d in entry["differing"]]


def scaling_table(records: Mapping[str, Mapping[str, Any]]) -> Table:
    """One row per scaling record (name -> bench_scaling.py's JSON): one GPU alone, N at once, the efficiency."""
    rows = [[name, r["gpus"], r["batch"], f"{r['one_device']['throughput']:.1f}",
             f"{r['all_devices']['throughput']:.1f}", f"{r['ideal_throughput']:.1f}", f"{r['scaling_efficiency']:.3f}"]
            for name, r in records.items()]
    return ["engine", "GPUs", "batch", "one GPU (samples/s)", "all GPUs (samples/s)", "N x one", "efficiency"], rows
